# A p2pchat relay in a container (README, "Running a relay"). Not built or run by the tests or CI.
#
#   docker build -t p2pchat-relay .
#   docker run -d --name p2pchat-relay --restart on-failure --network host \
#     -v p2pchat-relay:/var/lib/p2pchat-relay \
#     -e P2PCHAT_BOOTSTRAP=/ip4/<bootstrap ip>/tcp/4001/p2p/<bootstrap peer id> p2pchat-relay
#
# Arguments after the image name are added to `p2pchat start --relay ...` (e.g. `--announce
# /ip4/<public ip>/tcp/4001` behind a port forward, `--metrics 127.0.0.1:9464`). The relay runs from
# the sources (Node 24 strips their types), as a user without privileges, its data directory a volume
# (transport.key is the relay's identity: back the volume up). SIGINT stops it cleanly.
#
# Checked without Docker (2026-12-02: no daemon and no Docker Hub where this is developed):
# `node scripts/check-dockerfile.ts` copies exactly this file's COPY paths into a temporary directory
# standing for WORKDIR, runs the RUN line's `npm ci --omit=dev --ignore-scripts` there, checks that every
# relative import of the copied sources names a copied file, and runs the ENTRYPOINT's program from the
# copy with Node 24: `start --relay --help`, then a relay on 127.0.0.1 (these arguments, loopback listen
# addresses) until `ready`, then SIGINT (exit 0). It passed: the file set is complete for the relay. Not
# checked: the base image, the user, the volume's modes, EXPOSE and STOPSIGNAL.
FROM node:24-bookworm-slim

WORKDIR /opt/p2pchat
# dependencies only (no dev tools); install scripts skipped: the image's Node is the one that runs
# p2pchat, so the `node` package's download of another Node binary is not needed
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY bin/ bin/
COPY cli/ cli/
COPY node/ node/
COPY protocols/ protocols/
COPY bootstrap/ bootstrap/

RUN useradd --system --home-dir /var/lib/p2pchat-relay --shell /usr/sbin/nologin p2pchat \
  && install -d -o p2pchat -g p2pchat -m 0700 /var/lib/p2pchat-relay
USER p2pchat
VOLUME /var/lib/p2pchat-relay
# libp2p over TCP and over WebSockets (both must be reachable from the Internet: the relay checks)
EXPOSE 4001/tcp 4002/tcp
STOPSIGNAL SIGINT
ENTRYPOINT ["node", "/opt/p2pchat/bin/p2pchat.cjs", "start", "--relay", "--data-dir", "/var/lib/p2pchat-relay", \
  "--listen", "/ip4/0.0.0.0/tcp/4001", "--listen", "/ip4/0.0.0.0/tcp/4002/ws"]
