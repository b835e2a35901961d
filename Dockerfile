# syntax=docker/dockerfile:1
# Groundskeeper's image. Two stages: the production dependencies are installed from the lockfile
# in a build stage, then copied with the source into a slim runtime that runs as the non-root
# user `node`. Install scripts are skipped: the image runs the base image's Node 24 and an external
# PostgreSQL (DATABASE_URL), so neither the `node` package's runtime download nor the embedded
# PostgreSQL's postinstall is needed. Build: docker build --build-arg GK_BUILD_COMMIT=$(git rev-parse --short=12 HEAD) -t groundskeeper .
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ARG GK_BUILD_COMMIT=unknown
ENV NODE_ENV=production \
    GRAPHILE_ENV=production \
    GK_BUILD_COMMIT=${GK_BUILD_COMMIT} \
    GROUNDSKEEPER_HOME=/var/lib/groundskeeper \
    HOST=0.0.0.0 \
    PORT=5678
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json crontab ./
COPY bin ./bin
COPY src ./src
COPY tasks ./tasks
COPY migrations ./migrations
COPY sql ./sql
RUN mkdir -p /var/lib/groundskeeper && chown node:node /var/lib/groundskeeper
USER node
EXPOSE 5678
ENTRYPOINT ["node", "bin/groundskeeper.js"]
CMD ["serve"]
