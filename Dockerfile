# The checkout demo (and the fake payment API) as one image. The demo's TypeScript
# runs under Node's type stripping; the preload is built into dist/, as users install it.
FROM node:24-slim
WORKDIR /app
COPY package.json package-lock.json ./
# Dev dependencies too: the demo uses s3rver and the node@24 binary the scripts pin.
RUN npm ci --no-audit --no-fund
COPY register.ts tsconfig.json ./
COPY .ci/build-preload.ts ./.ci/
COPY src ./src
COPY example ./example
RUN npm run build:preload
ENV NODE_ENV=production
EXPOSE 8080 9464
CMD ["node", "--import", "./dist/register.js", "example/start.ts"]
