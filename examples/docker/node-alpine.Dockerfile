# @shared-infra/event-bus on node:20-alpine (musl), from the prebuilt artifacts: no Rust, no
# compiler in the image. Build from the checkout's root after scripts/build-dist.sh:
#
#   docker build -f examples/docker/node-alpine.Dockerfile -t event-bus-node-alpine .
#   docker run --rm --network host -e REDIS_URL=redis://127.0.0.1:6379 event-bus-node-alpine
#
# With the packages on your registry this is just `npm install @shared-infra/event-bus`: npm
# installs the one platform package that fits (linux-x64-musl here, linux-arm64-musl on arm64).
# Adds 6.0 MB to the image: 6,168 KB of node_modules (the JS package, 128 KB, and the
# linux-x64-musl addon), measured by installing the same two tarballs into an empty directory.
FROM node:20-alpine
WORKDIR /app
ARG TARGETARCH
COPY dist/npm/ /tmp/event-bus/
RUN arch=$([ "$TARGETARCH" = arm64 ] && echo arm64 || echo x64) && \
    echo '{"private":true}' > package.json && \
    npm install --omit=dev --no-audit --no-fund \
      /tmp/event-bus/shared-infra-event-bus-2.0.0.tgz \
      "/tmp/event-bus/shared-infra-event-bus-linux-$arch-musl-2.0.0.tgz" && \
    rm -rf /tmp/event-bus ~/.npm
# A publish/subscribe round trip; replace with your service.
COPY tests/dist/roundtrip.js ./
CMD ["node", "roundtrip.js"]
