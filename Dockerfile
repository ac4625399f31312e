# Scriabin's image, for both roles of the scaled-out bot: `scriabin bot` and `scriabin worker`
# (docker-compose.yml runs them next to Redis).
#
# Two stages. `build` installs what requirements.txt names (the serving dependencies at the
# versions in requirements.lock, then Scriabin with its models) into a virtual environment;
# the image is that environment alone on a slim Python: no TensorFlow (the `train` extra is
# for training, see the README), no sources, no pip cache. No system ffmpeg either: PyAV's
# wheels carry FFmpeg. tests/test_deploy.py runs these steps outside Docker and checks that
# the environment they make answers a song.

FROM python:3.11-slim AS build
ENV VIRTUAL_ENV=/opt/scriabin
WORKDIR /src
COPY pyproject.toml README.md requirements.txt requirements.lock ./
COPY bot ./bot
COPY classifier ./classifier
COPY config ./config
COPY models ./models
RUN python -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install --disable-pip-version-check -r requirements.txt

FROM python:3.11-slim AS serve
ENV VIRTUAL_ENV=/opt/scriabin
COPY --from=build /opt/scriabin /opt/scriabin
# Per-server settings and feedback (SQLite) live in /data, a volume the bot processes share.
ENV PATH=/opt/scriabin/bin:$PATH SCRIABIN_DATA_DIR=/data
RUN useradd --create-home --uid 10001 scriabin && mkdir /data && chown scriabin /data
USER scriabin
WORKDIR /home/scriabin
CMD ["scriabin", "bot"]
