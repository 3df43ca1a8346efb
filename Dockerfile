# Builds the project the way the README installs it; the default command runs the tests.
# The base image must have a C++ compiler: torch.compile on the CPU builds C++ kernels
# (python:3.11-slim has none, and 3 tests failed inside it). python:3.11-bookworm has g++.
# Offline: put wheels in ./wheels (git-ignored, kept in the build context), use a base
# image that already has g++, and run
#   docker build --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/app/wheels .
ARG BASE_IMAGE=python:3.11-bookworm
FROM ${BASE_IMAGE}

# pip reads both from the environment; left unset they change nothing.
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS

WORKDIR /app
COPY . /app
RUN g++ --version > /dev/null \
 && pip install torch==2.13.0 \
 && pip install -e ".[all,test]"
# Build the native CPU kernel now (torch's extension cache in the image), so that the
# first call of a container, with or without a network, does not build it (a container
# with a read-only file system loads it from there as it is).
RUN python -c "from rmsnorm_torch.kernels._cpu_op import status; s = status(); print(s); assert s == 'native', s"

CMD ["python", "-m", "pytest"]
