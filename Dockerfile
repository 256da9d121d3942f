# The deployable image of evidence-archive: the `evidence` command with ffmpeg.
#   docker build -t evidence-archive .
#   docker run --rm -v evidence-data:/data evidence-archive init
# One-shot jobs (from a host cron or a scheduler) run the same image:
#   docker run --rm -v evidence-data:/data evidence-archive retention run --json
#   docker run --rm -v evidence-data:/data evidence-archive verify --older-than 30 --json
# and the station daemon:
#   docker run -d -v evidence-data:/data -v /srv/station/ST01:/inbox evidence-archive \
#       --actor station:ST01 --log-format json ingest watch --station ST01 /inbox
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg poppler-utils \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 evidence \
    && useradd --system --uid 10001 --gid evidence --create-home --home-dir /home/evidence \
       --shell /usr/sbin/nologin evidence \
    && mkdir -p /data \
    && chown evidence:evidence /data

WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY ingest ./ingest
COPY archive ./archive
COPY catalog ./catalog
COPY verify ./verify
COPY config ./config
RUN pip install --no-cache-dir . \
    && rm -rf build *.egg-info

VOLUME /data
ENV EVIDENCE_DATA_DIR=/data
USER evidence

ENTRYPOINT ["evidence"]
CMD ["--help"]
