# The checkout demo (and the fake payment API) as one image. The TypeScript sources
# run directly under Node's type stripping, exactly as in development.
FROM node:24-slim
WORKDIR /app
COPY package.json package-lock.json ./
# Dev dependencies too: the demo uses s3rver and the node@24 binary the scripts pin.
RUN npm ci --no-audit --no-fund
COPY register.ts tsconfig.json ./
COPY src ./src
COPY example ./example
ENV NODE_ENV=production
EXPOSE 8080 9464
CMD ["node", "--import", "./register.ts", "example/start.ts"]
