# PMIx for `srun --mpi=pmix`, sourced by .ci/run: Slurm's mpi/pmix plugin loads the
# unversioned libpmix.so, which Debian ships only in libpmix-dev; without it srun
# cannot start Open MPI ranks (tests/slurm.rs, the two-rank SFT). Idempotent.

if ! dpkg -s libpmix-dev >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpmix-dev >/dev/null
fi
