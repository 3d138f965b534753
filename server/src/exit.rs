//! How a process that has loaded the native model libraries ends.
//!
//! llama.cpp (with its OpenMP workers) and ONNX Runtime keep threads and process-wide C++ objects that are
//! never released before `exit`: Rust does not drop statics, and a model's worker thread may still be in the
//! middle of a job when the process ends. `exit` then runs the libraries' static destructors while those
//! threads still use what they destroy. The integration test binary, which loads every model, died with
//! SIGSEGV after all its tests had passed (CI, `it` exited with signal 11 after "165 passed; 0 failed").
//! There is nothing left to save at that point, so the process leaves with `_exit` before the native
//! destructors run: an `on_exit` handler registered after a library has set up its state runs before that
//! state's destructors (glibc runs `atexit`, `on_exit` and C++ static destructors in one list, last
//! registered first). Rust's own buffers are flushed before (`std::process::exit` and returning from `main`
//! both flush stdout first), and C's stdio is flushed here.

/// Makes the process end, from now on, without running the destructors registered so far. Called after each
/// native model library sets up state (ONNX Runtime loaded, a session built, a llama.cpp model or context
/// made), so that the handler is registered after that state's destructors and runs first.
pub fn skip_native_teardown() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: registers a handler with glibc; the handler only flushes C stdio and ends the process.
        let registered = unsafe { on_exit(leave_now, std::ptr::null_mut()) };
        if registered != 0 {
            tracing::warn!("could not register the exit handler: native libraries' destructors will run at exit");
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    /// glibc's `on_exit(3)`: like `atexit`, but the handler is given the exit status.
    fn on_exit(function: extern "C" fn(std::ffi::c_int, *mut std::ffi::c_void), argument: *mut std::ffi::c_void) -> std::ffi::c_int;
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" fn leave_now(status: std::ffi::c_int, _argument: *mut std::ffi::c_void) {
    // SAFETY: fflush(NULL) flushes every C stream; _exit ends the process with the status exit was given.
    unsafe {
        libc::fflush(std::ptr::null_mut());
        libc::_exit(status)
    }
}
