# Builds the project the way the README installs it; the default command runs the tests.
# Offline: put wheels in ./wheels (git-ignored, kept in the build context) and run
#   docker build --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/app/wheels .
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# pip reads both from the environment; left unset they change nothing.
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS

WORKDIR /app
COPY . /app
RUN pip install torch==2.13.0 \
 && pip install -e ".[all,test]"

CMD ["python", "-m", "pytest"]
