# Berth in a container: the static binary built by `make build`, with git
# (builds from git run it) and the CA certificates (ACME, registries, git over
# HTTPS) on a small Debian.
#
#   make build && docker build -t berth .
#   docker run -d --name berth --restart unless-stopped --network host \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /var/lib/berth:/var/lib/berth \
#     -e BERTH_PUBLIC_URL=https://berth.example.com berth
#
# Mount the data directory at the same path as on the host: release
# containers mount their health probe (this binary, which the server copies
# to /var/lib/berth/probe/berth) from the host, through the Docker Engine.
# Access to the Docker socket is access to the machine: this container is as
# trusted as the host's root.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY bin/berth /usr/local/bin/berth
ENV BERTH_DATA_DIR=/var/lib/berth \
    BERTH_PROBE_PATH=/var/lib/berth/probe/berth \
    BERTH_LISTEN=127.0.0.1:3000
VOLUME /var/lib/berth
ENTRYPOINT ["/usr/local/bin/berth"]
CMD ["server"]
