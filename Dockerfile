# syntax=docker/dockerfile:1
# The token server in a small image: a release build of `twilio-token` on distroless, run as a
# user without privileges. Build and run:
#
#   docker build -t twilio-token .
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/config.toml:/etc/twilio-token/config.toml:ro" \
#     -e TWILIO_API_SECRET -e TWILIO_TOKEN_COOKIE_KEY twilio-token
#
# The server then listens on 0.0.0.0:8080 inside the container, which it allows only when the
# configuration has authentication. docs/DEPLOYMENT.md shows two replicas behind a load
# balancer.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Only what the build reads: the workspace, its crates, and web/, which the demo page embeds.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY web web
RUN cargo build --release --locked -p twilio-token \
    && install -D -m 0755 target/release/twilio-token /out/usr/local/bin/twilio-token \
    && install -d -m 0700 -o 65532 -g 65532 /out/var/lib/twilio-token

# glibc and libgcc, which the binary links, and nothing else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /
USER 65532:65532
WORKDIR /var/lib/twilio-token
EXPOSE 8080
# `serve` reads TWILIO_* variables and the secrets that the file names from the environment.
ENTRYPOINT ["/usr/local/bin/twilio-token", "serve"]
CMD ["--config", "/etc/twilio-token/config.toml", "--listen", "0.0.0.0:8080", "--log-format", "json"]
