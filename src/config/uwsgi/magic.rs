//! uWSGI's magic variables (`%d`, `%n`, `%k`, ...): one table per ini file, applied to each
//! line before anything else reads it, as uWSGI applies it to the whole file. Every `%X` is
//! replaced; a letter uWSGI gives no value becomes empty (uWSGI's table starts all empty),
//! `%%` is `%`, and `%(` is left for the placeholder pass.

use std::path::Path;

use super::Context;

/// The magic values of one file, indexed by their letter.
#[derive(Debug, Clone, Default)]
pub(super) struct Magic {
    /// `(letter, value)`; a letter not here expands to nothing.
    vars: Vec<(char, String)>,
}

/// The letters uWSGI defines; any other `%X` expands to nothing (and is worth a warning).
const KNOWN: &str = "opjisdcen0123456789xbvhtTVk[uUgGODSPCENXIJ";

impl Magic {
    /// The table for `file` (absolute or not, as named) read for `section` (`Some` only when
    /// the user named one: `%x`), `first` being the top file's table for the uppercase
    /// letters (`None` while reading the top file itself).
    pub(super) fn for_file(
        named: &str,
        abs: &Path,
        section: Option<&str>,
        ctx: &Context<'_>,
        first: Option<&Magic>,
    ) -> Magic {
        let p = abs.to_string_lossy().into_owned();
        let s = p.rsplit('/').next().unwrap_or("").to_owned();
        // %d keeps its trailing slash, as uWSGI's does (`%dapp` is a sibling path).
        let d = p[..p.len() - s.len()].to_owned();
        let trimmed = d.trim_end_matches('/');
        let c = trimmed.rsplit('/').next().unwrap_or("").to_owned();
        let (n, e) = match s.rfind('.') {
            Some(dot) => (s[..dot].to_owned(), s[dot + 1..].to_owned()),
            None => (s.clone(), String::new()),
        };
        let mut vars = vec![
            ('o', named.to_owned()),
            ('p', p.clone()),
            ('j', format!("{:08x}", djb33x(p.as_bytes()).swap_bytes())),
            ('s', s),
            ('d', d.clone()),
            ('c', c),
            ('e', e),
            ('n', n),
            ('x', section.unwrap_or("").to_owned()),
            ('b', ctx.binary.clone()),
            ('v', ctx.cwd.to_string_lossy().into_owned()),
            ('h', ctx.hostname.clone()),
            ('t', (ctx.now_micros / 1_000_000).to_string()),
            ('T', ctx.now_micros.to_string()),
            ('V', env!("CARGO_PKG_VERSION").to_owned()),
            ('k', ctx.cpus.to_string()),
            ('[', "\x1b".to_owned()),
            ('u', ctx.uid.0.to_string()),
            ('U', ctx.uid.1.clone()),
            ('g', ctx.gid.0.to_string()),
            ('G', ctx.gid.1.clone()),
        ];
        if let Ok(meta) = std::fs::symlink_metadata(abs) {
            use std::os::unix::fs::MetadataExt;
            vars.push(('i', meta.ino().to_string()));
        }
        for (digit, part) in ('0'..='9').zip(trimmed.split('/').filter(|p| !p.is_empty())) {
            vars.push((digit, part.to_owned()));
        }
        let upper = first.map_or_else(
            || vars.clone(),
            |first| first.vars.iter().map(|(k, v)| (*k, v.clone())).collect(),
        );
        for (lower, upper_letter) in "odspcenxij".chars().zip("ODSPCENXIJ".chars()) {
            if let Some((_, v)) = upper.iter().find(|(k, _)| *k == lower) {
                vars.push((upper_letter, v.clone()));
            }
        }
        Magic { vars }
    }

    /// `line` with every `%X` replaced; the second value lists letters uWSGI does not define,
    /// which expanded to nothing.
    pub(super) fn apply(&self, line: &str) -> (String, Vec<char>) {
        let mut out = String::with_capacity(line.len());
        let mut unknown = Vec::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                // A `%` ending the line stays: uWSGI would join the next line to it.
                None => out.push('%'),
                Some('%') => out.push('%'),
                Some('(') => out.push_str("%("),
                Some(letter) => match self.vars.iter().find(|(k, _)| *k == letter) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        if !KNOWN.contains(letter) {
                            unknown.push(letter);
                        }
                    }
                },
            }
        }
        (out, unknown)
    }
}

/// uWSGI's djb33x hash (`%j`), printed from its bytes in memory order as uWSGI prints it.
fn djb33x(bytes: &[u8]) -> u32 {
    bytes.iter().fold(5381u32, |h, &b| {
        (h.wrapping_shl(5).wrapping_add(h)) ^ (b as i8 as i32 as u32)
    })
}

/// The real system's [`Context`].
pub(super) fn system_context(env: &dyn Fn(&str) -> Option<String>) -> Context<'_> {
    // SAFETY: getuid and getgid cannot fail and touch no memory of ours.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Context {
        env,
        cwd: std::env::current_dir().unwrap_or_else(|_| "/".into()),
        hostname: hostname(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        uid: (
            uid,
            name_of("/etc/passwd", uid).unwrap_or_else(|| uid.to_string()),
        ),
        gid: (
            gid,
            name_of("/etc/group", gid).unwrap_or_else(|| gid.to_string()),
        ),
        binary: std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        now_micros: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64),
        reload: false,
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The name of `id` in an `/etc/passwd`-style file (`name:x:id:...`); uWSGI falls back to the
/// number, and so does the caller (NSS users are not in the file).
fn name_of(file: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == id).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ctx(env: &dyn Fn(&str) -> Option<String>) -> Context<'_> {
        Context {
            env,
            cwd: "/srv".into(),
            hostname: "web1".into(),
            cpus: 8,
            uid: (1000, "deploy".into()),
            gid: (1000, "www".into()),
            binary: "/usr/bin/segue".into(),
            now_micros: 1_700_000_000_123_456,
            reload: false,
        }
    }

    #[test]
    fn file_letters_follow_uwsgi() {
        let env = |_: &str| None;
        let ctx = ctx(&env);
        let m = Magic::for_file(
            "app.ini",
            Path::new("/etc/uwsgi/vassals/app.ini"),
            None,
            &ctx,
            None,
        );
        let (out, unknown) =
            m.apply("%d|%n|%p|%s|%e|%c|%0|%2|%x|%O|%h|%k|%u|%U|%g|%G|%%|%(x)|%z|%");
        assert_eq!(
            out,
            "/etc/uwsgi/vassals/|app|/etc/uwsgi/vassals/app.ini|app.ini|ini|vassals|etc|vassals||app.ini|web1|8|1000|deploy|1000|www|%|%(x)||%"
        );
        assert_eq!(unknown, ['z']);
        let (t, _) = m.apply("%t %T");
        assert_eq!(t, "1700000000 1700000000123456");
    }

    #[test]
    fn uppercase_letters_are_the_top_files() {
        let env = |_: &str| None;
        let ctx = ctx(&env);
        let top = Magic::for_file("/a/top.ini", Path::new("/a/top.ini"), None, &ctx, None);
        let inc = Magic::for_file(
            "/b/inc.ini",
            Path::new("/b/inc.ini"),
            Some("x"),
            &ctx,
            Some(&top),
        );
        assert_eq!(inc.apply("%d %D %n %N %x").0, "/b/ /a/ inc top x");
    }
}
