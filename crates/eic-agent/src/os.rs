//! The libc calls eic makes, in one place: the only `unsafe` in the
//! workspace, each block with why it is sound.

use std::ffi::CString;

/// The primary group of the local user `user`, or `None` when there is no
/// such user.
pub fn user_gid(user: &str) -> Option<libc::gid_t> {
    let name = CString::new(user).ok()?;
    #[allow(unsafe_code)]
    // SAFETY: a NUL-terminated name; the entry is read at once, before any
    // other call could reuse getpwnam's static storage (eic calls it from
    // one thread), and a non-null entry points to a valid passwd.
    unsafe {
        let entry = libc::getpwnam(name.as_ptr());
        (!entry.is_null()).then(|| (*entry).pw_gid)
    }
}

/// Opens syslog for `eic authorized-keys`: facility authpriv, with the pid.
pub fn open_syslog() {
    #[allow(unsafe_code)]
    // SAFETY: a static NUL-terminated ident; openlog keeps the pointer,
    // which lives as long as the program.
    unsafe {
        libc::openlog(
            c"eic-authorized-keys".as_ptr(),
            libc::LOG_PID,
            libc::LOG_AUTHPRIV,
        )
    };
}

/// One authpriv message at `priority`; NULs in `message` become spaces.
pub fn syslog(priority: libc::c_int, message: &str) {
    let Ok(message) = CString::new(message.replace('\0', " ")) else {
        return;
    };
    #[allow(unsafe_code)]
    // SAFETY: both strings are NUL-terminated; "%s" makes the message data,
    // never a format.
    unsafe {
        libc::syslog(
            libc::LOG_AUTHPRIV | priority,
            c"%s".as_ptr(),
            message.as_ptr(),
        )
    };
}
