//! The Open MPI backend: `libmpi` loaded at run time with `libloading`, so the crate
//! builds anywhere with no MPI headers, bindgen or libclang (the `mpi` crate needs all
//! three at build time), and a process that never asks for MPI never needs it. Open
//! MPI's predefined handles (`MPI_COMM_WORLD`, `MPI_FLOAT`, `MPI_SUM`) are the addresses
//! of its exported objects (`ompi_mpi_comm_world`, …), which is Open MPI's ABI; MPICH's
//! integer handles are not supported. The library is opened `RTLD_GLOBAL` because Open
//! MPI's plugins resolve their symbols against it. Calls are serialised by a lock
//! (`MPI_THREAD_SERIALIZED`); counts are C `int`s, so one call moves under 2³¹ values.

use super::collective::{Collective, check_chunks, check_root};
use crate::janus::error::{JanusError, Result};
use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

type Handle = *mut c_void;
type Buf = *const c_void;
type BufMut = *mut c_void;

/// Where libmpi is looked for: `REASONGEN_LIBMPI`, then Open MPI 4/5's soname.
const LIBRARIES: [&str; 2] = ["libmpi.so.40", "libmpi.so"];
/// Open MPI's `MPI_IN_PLACE`.
const IN_PLACE: Buf = 1 as Buf;
const THREAD_SERIALIZED: c_int = 2;

/// The entry points used, copied out of the library (valid while it is loaded).
struct Api {
    init_thread: unsafe extern "C" fn(*mut c_int, *mut c_void, c_int, *mut c_int) -> c_int,
    initialized: unsafe extern "C" fn(*mut c_int) -> c_int,
    finalize: unsafe extern "C" fn() -> c_int,
    comm_rank: unsafe extern "C" fn(Handle, *mut c_int) -> c_int,
    comm_size: unsafe extern "C" fn(Handle, *mut c_int) -> c_int,
    allreduce: unsafe extern "C" fn(Buf, BufMut, c_int, Handle, Handle, Handle) -> c_int,
    reduce_scatter_block: unsafe extern "C" fn(Buf, BufMut, c_int, Handle, Handle, Handle) -> c_int,
    allgather: unsafe extern "C" fn(Buf, c_int, Handle, BufMut, c_int, Handle, Handle) -> c_int,
    bcast: unsafe extern "C" fn(BufMut, c_int, Handle, c_int, Handle) -> c_int,
    barrier: unsafe extern "C" fn(Handle) -> c_int,
}

/// `MPI_COMM_WORLD` of this process, initialised by [`Mpi::init`] and finalised on drop.
pub struct Mpi {
    api: Api,
    comm: Handle,
    float: Handle,
    sum: Handle,
    rank: usize,
    world: usize,
    lock: Mutex<()>,
    /// Kept loaded while the entry points are in use.
    _library: Library,
}

// SAFETY: the handles are addresses of Open MPI's static objects, and every call goes
// through `lock` (the library is initialised for serialised calls from any thread).
unsafe impl Send for Mpi {}
unsafe impl Sync for Mpi {}

fn library_names() -> Vec<String> {
    match std::env::var("REASONGEN_LIBMPI") {
        Ok(name) => vec![name],
        Err(_) => LIBRARIES.iter().map(|s| s.to_string()).collect(),
    }
}

fn open_library(names: &[String]) -> Result<Library> {
    let mut errors = Vec::new();
    for name in names {
        // SAFETY: loading libmpi runs its initialisers, which have no preconditions.
        match unsafe { Library::open(Some(name), RTLD_NOW | RTLD_GLOBAL) } {
            Ok(lib) => return Ok(lib),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    Err(JanusError::Invalid(format!(
        "the MPI backend needs Open MPI's libmpi (Debian: apt-get install openmpi-bin), \
         or REASONGEN_LIBMPI naming it; loading failed: {}",
        errors.join("; ")
    )))
}

/// The address of the symbol `name` (a function or one of Open MPI's objects).
fn symbol<T: Copy>(lib: &Library, name: &str) -> Result<T> {
    // SAFETY: each `T` is the C type Open MPI's `mpi.h` declares for `name`.
    let sym = unsafe { lib.get::<T>(name) }
        .map_err(|e| JanusError::Invalid(format!("libmpi has no `{name}` (not Open MPI?): {e}")))?;
    Ok(*sym)
}

fn count(n: usize) -> Result<c_int> {
    c_int::try_from(n)
        .map_err(|_| JanusError::Invalid(format!("{n} values are more than one MPI call can move")))
}

impl Mpi {
    /// Load libmpi and initialise MPI (once per process: MPI cannot start again after
    /// it has been finalised).
    pub fn init() -> Result<Mpi> {
        let lib = open_library(&library_names())?;
        let api = Api {
            init_thread: symbol(&lib, "MPI_Init_thread")?,
            initialized: symbol(&lib, "MPI_Initialized")?,
            finalize: symbol(&lib, "MPI_Finalize")?,
            comm_rank: symbol(&lib, "MPI_Comm_rank")?,
            comm_size: symbol(&lib, "MPI_Comm_size")?,
            allreduce: symbol(&lib, "MPI_Allreduce")?,
            reduce_scatter_block: symbol(&lib, "MPI_Reduce_scatter_block")?,
            allgather: symbol(&lib, "MPI_Allgather")?,
            bcast: symbol(&lib, "MPI_Bcast")?,
            barrier: symbol(&lib, "MPI_Barrier")?,
        };
        let comm: Handle = symbol(&lib, "ompi_mpi_comm_world")?;
        let float: Handle = symbol(&lib, "ompi_mpi_float")?;
        let sum: Handle = symbol(&lib, "ompi_mpi_op_sum")?;
        let mut flag: c_int = 0;
        // SAFETY: the entry points are Open MPI's, called with valid out-pointers.
        unsafe {
            check("MPI_Initialized", (api.initialized)(&mut flag))?;
            if flag != 0 {
                return Err(JanusError::Invalid(
                    "MPI is initialised already in this process".into(),
                ));
            }
            let mut provided: c_int = 0;
            let (argc, argv) = (std::ptr::null_mut(), std::ptr::null_mut());
            check(
                "MPI_Init_thread",
                (api.init_thread)(argc, argv, THREAD_SERIALIZED, &mut provided),
            )?;
            if provided < THREAD_SERIALIZED {
                (api.finalize)();
                return Err(JanusError::Invalid(format!(
                    "this libmpi gives thread level {provided}, serialised calls need {THREAD_SERIALIZED}"
                )));
            }
        }
        let (mut rank, mut world): (c_int, c_int) = (0, 0);
        // SAFETY: as above; MPI is initialised.
        unsafe {
            check("MPI_Comm_rank", (api.comm_rank)(comm, &mut rank))?;
            check("MPI_Comm_size", (api.comm_size)(comm, &mut world))?;
        }
        Ok(Mpi {
            api,
            comm,
            float,
            sum,
            rank: rank as usize,
            world: world as usize,
            lock: Mutex::new(()),
            _library: lib,
        })
    }

    /// Run one MPI call under the lock.
    fn call(&self, name: &str, f: impl FnOnce(&Api) -> c_int) -> Result<()> {
        let _serialised = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        check(name, f(&self.api))
    }
}

fn check(name: &str, code: c_int) -> Result<()> {
    if code != 0 {
        return Err(JanusError::Invalid(format!(
            "{name} failed with MPI error {code}"
        )));
    }
    Ok(())
}

impl Drop for Mpi {
    fn drop(&mut self) {
        // SAFETY: initialised in `init`, finalised once here.
        unsafe { (self.api.finalize)() };
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        let n = count(buf.len())?;
        let p = buf.as_mut_ptr().cast();
        // SAFETY: `buf` holds `n` floats; in place, as MPI_IN_PLACE allows.
        self.call("MPI_Allreduce", |a| unsafe {
            (a.allreduce)(IN_PLACE, p, n, self.float, self.sum, self.comm)
        })
    }

    fn reduce_scatter(&self, input: &[f32], out: &mut [f32]) -> Result<()> {
        check_chunks("reduce_scatter", input.len(), out.len(), self.world)?;
        let n = count(out.len())?;
        count(input.len())?;
        let (i, o) = (input.as_ptr().cast(), out.as_mut_ptr().cast());
        // SAFETY: `input` holds world × n floats and `out` n.
        self.call("MPI_Reduce_scatter_block", |a| unsafe {
            (a.reduce_scatter_block)(i, o, n, self.float, self.sum, self.comm)
        })
    }

    fn all_gather(&self, input: &[f32], out: &mut [f32]) -> Result<()> {
        check_chunks("all_gather", out.len(), input.len(), self.world)?;
        let n = count(input.len())?;
        count(out.len())?;
        let (i, o) = (input.as_ptr().cast(), out.as_mut_ptr().cast());
        // SAFETY: `input` holds n floats and `out` world × n.
        self.call("MPI_Allgather", |a| unsafe {
            (a.allgather)(i, n, self.float, o, n, self.float, self.comm)
        })
    }

    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        check_root(root, self.world)?;
        let n = count(buf.len())?;
        let p = buf.as_mut_ptr().cast();
        // SAFETY: `buf` holds n floats; root < world fits a C int.
        self.call("MPI_Bcast", |a| unsafe {
            (a.bcast)(p, n, self.float, root as c_int, self.comm)
        })
    }

    fn barrier(&self) -> Result<()> {
        // SAFETY: the communicator is MPI_COMM_WORLD.
        self.call("MPI_Barrier", |a| unsafe { (a.barrier)(self.comm) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_clear_error() {
        let e = open_library(&["libmpi-that-is-not-there.so".into()])
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("openmpi-bin") && e.contains("libmpi-that-is-not-there"),
            "{e}"
        );
    }
}
