# One image for every slapay service: `docker run IMAGE serve ledger`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-cache-dir -c constraints.txt . && useradd --uid 10001 slapay
USER slapay
ENTRYPOINT ["slapay"]
CMD ["serve", "ledger", "--host", "0.0.0.0"]
