# One image for both roles of the scaled-out bot: `scriabin bot` and `scriabin worker`
# (docker-compose.yml runs them next to Redis). No system ffmpeg: PyAV's wheels carry FFmpeg.
FROM python:3.11-slim

WORKDIR /app
# The project is installed where it lies, so models/ and config/ are found beside the code.
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY classifier ./classifier
COPY config ./config
COPY models ./models
RUN pip install --no-cache-dir -e . \
    && useradd --create-home --uid 10001 scriabin \
    && mkdir /data && chown scriabin /data
USER scriabin
# Per-server settings and feedback (SQLite) live on a volume, shared by the bot processes.
ENV SCRIABIN_DATABASE_PATH=/data/scriabin.sqlite3
CMD ["scriabin", "bot"]
