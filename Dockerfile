# insiderwatch worker / CLI image. The broker runs in its own container (apache/kafka).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY insiderwatch ./insiderwatch
COPY models ./models
COPY stream ./stream
# The dependencies include rocksdict, the bindings of the rocksdb:// store the compose file uses.
RUN pip install --no-cache-dir .
ENV INSIDERWATCH_WEB_HOST=0.0.0.0
ENTRYPOINT ["insiderwatch"]
CMD ["worker"]
