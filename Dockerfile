# leaky-tokens in a container (README, "Operations").
#   docker build -t leaky-tokens .
#   docker run --rm -p 8080:8080 leaky-tokens          # the shipped config: built-in stub upstreams, no API key
#   docker run --rm -p 8080:8080 -v "$PWD/leaky.yaml:/etc/leaky/leaky.yaml:ro" -e OPENAI_API_KEY leaky-tokens
# Config: /etc/leaky/leaky.yaml ($LEAKY_CONFIG). The image's default config takes LEAKY_LISTEN, LEAKY_ADMIN_LISTEN
# and LEAKY_LOG_LEVEL from the environment; a config of your own can use ${env:NAME} in any value. Bucket state
# survives restarts with `state_file: /var/lib/leaky/buckets.snap` and a volume on /var/lib/leaky.
#
# Base: Node 24 on Debian 13, which runs uWS 20.57 (its binaries need glibc >= 2.38). The alternative, Node 20 on
# Debian 12 with uWS 20.30 (README, "Node.js versions and uWS builds"):
#   docker build --build-arg NODE_IMAGE=node:20-bookworm-slim -t leaky-tokens:node20 .
ARG NODE_IMAGE=node:24-trixie-slim

# build: TypeScript, with the dev dependencies
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# deps: production dependencies only. One of them has a native addon that is not N-API: better-sqlite3 (runtime keys),
# built here from source against this image's Node (its install script would try a prebuilt download first), with
# the compiler this stage alone carries. The other install scripts are skipped: the ws accelerators are used only by
# the pure-JS fallback leaky refuses, and the uWS builds ship their binaries.
FROM ${NODE_IMAGE} AS deps
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && npm rebuild better-sqlite3 --build-from-source \
 && node -e "new (require('better-sqlite3'))(':memory:').close()" \
 && npm cache clean --force

# runtime: the compiled dist/ and the production dependencies, not root
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    LEAKY_CONFIG=/etc/leaky/leaky.yaml \
    LEAKY_LISTEN=0.0.0.0:8080 \
    LEAKY_ADMIN_LISTEN=127.0.0.1:9090
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config ./config
# the shipped config, with its listen addresses and log level taken from the environment
RUN mkdir -p /etc/leaky /var/lib/leaky /run/leaky \
 && sed -e 's|^listen: 0.0.0.0:8080|listen: "${env:LEAKY_LISTEN:-0.0.0.0:8080}"|' \
        -e 's|^  listen: 127.0.0.1:9090|  listen: "${env:LEAKY_ADMIN_LISTEN:-127.0.0.1:9090}"|' \
        -e 's|^  level: info |  level: "${env:LEAKY_LOG_LEVEL:-info}" |' \
        config/leaky.yaml > /etc/leaky/leaky.yaml \
 && chown node:node /var/lib/leaky /run/leaky
# uid 1000 of the base image; /run/leaky holds the pid file and control socket (`leaky status` via docker exec)
USER node
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "const a = (process.env.LEAKY_ADMIN_LISTEN || '127.0.0.1:9090').replace('0.0.0.0', '127.0.0.1'); fetch(`http://${a}/live`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# the master drains (up to drain_timeout) on SIGTERM; give it time: docker stop -t 40, k8s terminationGracePeriodSeconds
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["start"]
