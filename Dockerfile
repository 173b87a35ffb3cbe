# insiderwatch worker / CLI image. The broker runs in its own container (apache/kafka).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY models ./models
COPY stream ./stream
RUN pip install --no-cache-dir ".[rocksdb]"
ENV INSIDERWATCH_WEB_HOST=0.0.0.0
ENTRYPOINT ["insiderwatch"]
CMD ["worker"]
