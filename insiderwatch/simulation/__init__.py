"""Tools around the detector: simulated organisations with planted insiders (``simulate``)
and the detection evaluation that trains and scores on them (``evaluate``)."""
