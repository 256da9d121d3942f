# The deployable image of evidence-archive: the `evidence` command with ffmpeg and the fonts
# the pages and PDF reports need for Chinese text. It serves the web pages by default.
#
#   docker build -t evidence-archive .
#   docker run --rm -v evidence-data:/data evidence-archive init
#
# The web pages (listening on every interface inside the container; publish the port, and put
# a TLS proxy in front: config/nginx.example.conf):
#   docker run -d --name evidence-web -p 127.0.0.1:8080:8080 -v evidence-data:/data \
#       -e EVIDENCE_WEB_PUBLIC_URL=https://evidence.example.org/ evidence-archive
# One-shot jobs (from a host cron, through evidence-job, or a scheduler) run the same image:
#   docker run --rm -v evidence-data:/data evidence-archive retention run --json
#   docker run --rm -v evidence-data:/data evidence-archive verify --older-than 30 --json
# The station daemon, whose health is `evidence doctor --quick` rather than the pages' /healthz:
#   docker run -d --name evidence-st01 -v evidence-data:/data -v /srv/evidence/stations/ST01:/inbox \
#       --health-cmd "evidence doctor --quick" --health-interval 1m \
#       evidence-archive --actor station:ST01 --log-format json ingest watch --station ST01 /inbox
# Secrets: pass files, not values (-v /etc/evidence/credentials:/run/credentials:ro
#   -e CREDENTIALS_DIRECTORY=/run/credentials, or -e EVIDENCE_S3_SECRET_KEY_FILE=...).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ffmpeg for probes and derivatives; Noto CJK for the pages (and Chromium-printed PDFs);
# WenQuanYi Zen Hei, a TrueType font reportlab can embed, for PDF reports with Chinese text.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       ffmpeg poppler-utils fonts-noto-cjk fonts-wqy-zenhei \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 evidence \
    && useradd --system --uid 10001 --gid evidence --create-home --home-dir /home/evidence \
       --shell /usr/sbin/nologin evidence \
    && mkdir -p /data \
    && chown evidence:evidence /data \
    && chmod 0700 /data

WORKDIR /app
# Every dependency at the version the suite passed with.
COPY constraints.txt setup.cfg pyproject.toml README.md ./
COPY ingest ./ingest
COPY archive ./archive
COPY catalog ./catalog
COPY verify ./verify
COPY config ./config
RUN pip install --no-cache-dir -c constraints.txt '.[pdf]' \
    && rm -rf build *.egg-info

VOLUME /data
ENV EVIDENCE_DATA_DIR=/data \
    EVIDENCE_WEB_HOST=0.0.0.0
USER evidence
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["evidence"]
CMD ["--log-format", "json", "serve"]
