# make docker-test's stand-in for MinIO when no registry answers: moto's S3 server (the one
# the test suite uses) on the base image the Shotline images are built from. The same image
# makes the bucket (boto3 comes with moto).
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
# moto's S3 backend and its server's web framework (moto[server] would add every AWS service).
ARG MOTO_REQUIREMENTS="moto[s3]>=5.0 flask flask-cors"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=SC2086
RUN python -m venv /opt/moto \
 && /opt/moto/bin/pip install --only-binary=:all: ${MOTO_REQUIREMENTS}
ENV PATH=/opt/moto/bin:$PATH PYTHONUNBUFFERED=1
CMD ["moto_server", "-H", "127.0.0.1", "-p", "9000"]
