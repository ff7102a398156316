# The sidecar's image: TypeScript compiled with tsc in a build stage, run by Node in a small,
# non-root runtime stage with production dependencies only.
#
# NODE_IMAGE is node:24-bookworm-slim on a normal machine (the Node.js LTS the tests run on).
# Where no container registry is reachable, stack/up.sh builds hsc/node:local (stack/images/node: the official Node 24 build
# from the npm registry on the local Debian base, laid out like the official image) and passes
# it here; Debian 12's own nodejs is 18, below package.json's engines (24).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
# PEM text of extra trust anchors, for a network whose HTTPS goes through an inspecting proxy
# (stack/up.sh passes the machine's own additions); empty on a normal machine. Build stage
# only: the runtime stage below never sees it.
ARG EXTRA_CA_CERTS=""
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script to compile or run the sidecar (the
# optional native SSH helpers of docker-modem are not used: Docker is reached over a socket).
RUN printf '%s\n' "$EXTRA_CA_CERTS" >/tmp/extra-ca.pem \
 && NODE_EXTRA_CA_CERTS=/tmp/extra-ca.pem npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY generated/ ./generated/
COPY sidecar/ ./sidecar/
# Production dependencies only, and none of what packages ship for their own tests: ssh2 (pulled in
# by docker-modem, unused over a socket) carries private keys in its test fixtures, which have
# no place in an image and would each be a finding for a secret scanner.
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
 && rm -rf node_modules/ssh2/test \
 && find node_modules -type f \( -name '*.pem' -o -name '*.key' -o -name '*.ppk' -o -name '*.p12' -o -name 'id_rsa*' -o -name 'id_dsa*' -o -name 'id_ecdsa*' -o -name 'id_ed25519*' \) -delete

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The compiled main reads its version from here (two levels above dist/sidecar/main.js).
COPY package.json ./package.json
# Where the sidecar keeps its durable state (autoscale.stateFile: a scale-down in progress); a
# volume mounted here starts with this directory's owner, so the non-root user can write to it.
RUN install -d -o node -g node -m 700 /var/lib/hsc-sidecar
# uid 1000, the `node` user of the official image and of stack/images/node; numeric, so that a
# runtime that must prove the user is not root (Kubernetes' runAsNonRoot) can. The image runs with
# a read-only root filesystem: it writes nothing outside the state volume above.
USER 1000:1000
EXPOSE 9180
HEALTHCHECK --interval=5s --timeout=3s --start-period=15s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.HSC_HTTP_PORT||9180)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Secrets arrive as files: the configuration loader reads HSC_<NAME>_FILE for every secret key.
# The node flags hold the idle sidecar under its memory budget (80 MiB RSS; measured, bench
# `resources`): --max-semi-space-size=1 keeps V8's young generation at 1 MiB per semi-space
# (under the breach check's steady allocation it otherwise grows to 16), and --max-opt=2 stops at
# Maglev, so TurboFan never runs and its code in the node binary (about 5 MiB of pages) is never
# touched. At the production interval the sidecar is idle most of the time: CPU stayed at the same
# fraction of a percent with both. bench/lib/sidecar-process.ts reads these flags from this line.
CMD ["node", "--max-semi-space-size=1", "--max-opt=2", "dist/sidecar/main.js"]
