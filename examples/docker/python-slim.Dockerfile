# shared-infra-event-bus on python:3.12-slim (Debian, glibc), from the prebuilt wheels: no Rust,
# no compiler in the image. Build from the checkout's root after scripts/build-dist.sh:
#
#   docker build -f examples/docker/python-slim.Dockerfile -t event-bus-python-slim .
#   docker run --rm --network host -e REDIS_URL=redis://127.0.0.1:6379 event-bus-python-slim
#
# pip picks the wheel for the image's platform (manylinux_2_17 x86_64 or aarch64; on
# python:3.12-alpine the musllinux_1_2 one). With the wheels on your index this is just
# `pip install shared-infra-event-bus`. Adds 6.5 MB to the image: 6,704 KB installed (the
# manylinux_2_17_x86_64 wheel, measured with pip install --target into an empty directory).
FROM python:3.12-slim
COPY dist/wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --no-index --only-binary :all: --find-links /tmp/wheels \
      shared-infra-event-bus && \
    rm -rf /tmp/wheels
WORKDIR /app
# A publish/subscribe round trip; replace with your worker.
COPY tests/dist/roundtrip.py ./
CMD ["python", "roundtrip.py"]
