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
