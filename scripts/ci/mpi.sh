# Open MPI for the data-parallel tests, sourced by .ci/run: installs Debian's
# openmpi-bin (mpirun and libmpi.so.40, which train/src/dist/mpi.rs loads at run time)
# when mpirun is missing, and sets REASONGEN_REQUIRE_MPI=1 so that the mpirun test
# fails rather than skips without it. Idempotent; nothing to do when installed.

if ! command -v mpirun >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin >/dev/null
fi
export REASONGEN_REQUIRE_MPI=1
