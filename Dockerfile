# The embguard sidecar with a CPU-only torch (the default wheel index would bring a multi-GB CUDA build).
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /opt/embguard
# The exact torch is pinned in constraints.txt (pyproject.toml has a range); both installs use it.
COPY constraints.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch -c constraints.txt
COPY pyproject.toml README.md LICENSE ./
COPY embguard ./embguard
COPY monitors ./monitors
COPY retrain ./retrain
# The sidecar: daemon, trainer and Evidently reports (the core install is only the application-side client).
RUN pip install -c constraints.txt '.[serve,train,evidently]' && useradd --system --home /var/lib/embguard embguard \
    && mkdir -p /var/lib/embguard/models /var/lib/embguard/state && chown -R embguard /var/lib/embguard
USER embguard
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz')"
CMD ["embguard", "serve"]
