# One image for every slapay service: `docker run -p 8080:8080 IMAGE serve ledger`.
# Build: docker build -t slapay:0.1.0 .   (the services read SLAPAY_* and OTEL_* variables)

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/slapay
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY services ./services
RUN /opt/slapay/bin/pip install -c constraints.txt .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="slapay" \
      org.opencontainers.image.description="Payment by SLA and reviews: ingest, reviews, ledger, statements" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 slapay \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin slapay \
    && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /opt/slapay /opt/slapay
ENV PATH=/opt/slapay/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SLAPAY_HOST=0.0.0.0 \
    SLAPAY_PORT=8080 \
    SLAPAY_DATA_DIR=/data \
    SLAPAY_LOG_LEVEL=info \
    SLAPAY_LOG_FORMAT=json
WORKDIR /data
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SLAPAY_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["slapay"]
CMD ["serve", "ledger"]
