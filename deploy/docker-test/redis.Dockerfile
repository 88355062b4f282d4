# make docker-test's stand-in for the `redis` image when no registry answers: Debian's
# redis-server on the base image the Shotline images are built from.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d /data /usr/local/etc/redis
WORKDIR /data
CMD ["redis-server", "/usr/local/etc/redis/redis.conf"]
