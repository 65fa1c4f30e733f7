//! Content types of static files by extension: a compact built-in table of what web apps
//! ship (uWSGI reads /etc/mime.types; a table keeps workers independent of the host).

/// Types by lower-case extension.
const TYPES: &[(&str, &str)] = &[
    ("apng", "image/apng"),
    ("avif", "image/avif"),
    ("bmp", "image/bmp"),
    ("css", "text/css"),
    ("csv", "text/csv"),
    ("eot", "application/vnd.ms-fontobject"),
    ("gif", "image/gif"),
    ("gz", "application/gzip"),
    ("htm", "text/html"),
    ("html", "text/html"),
    ("ico", "image/vnd.microsoft.icon"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("md", "text/markdown"),
    ("mjs", "text/javascript"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("oga", "audio/ogg"),
    ("ogg", "audio/ogg"),
    ("ogv", "video/ogg"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("svg", "image/svg+xml"),
    ("tar", "application/x-tar"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("ttf", "font/ttf"),
    ("txt", "text/plain"),
    ("wasm", "application/wasm"),
    ("wav", "audio/wav"),
    ("webm", "video/webm"),
    ("webmanifest", "application/manifest+json"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xml", "application/xml"),
    ("zip", "application/zip"),
];

/// What an unknown extension is sent as: bytes, never something a browser might sniff and
/// run.
pub const DEFAULT: &str = "application/octet-stream";

/// The content type for a file named `name`.
pub fn content_type(name: &[u8]) -> &'static str {
    let Some(dot) = name.iter().rposition(|b| *b == b'.') else {
        return DEFAULT;
    };
    let ext = &name[dot + 1..];
    TYPES
        .iter()
        .find(|(e, _)| e.as_bytes().eq_ignore_ascii_case(ext))
        .map_or(DEFAULT, |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension_any_case() {
        assert_eq!(content_type(b"app.CSS"), "text/css");
        assert_eq!(content_type(b"a.b.js"), "text/javascript");
        assert_eq!(content_type(b"index.html"), "text/html");
        assert_eq!(content_type(b"README"), DEFAULT);
        assert_eq!(content_type(b"x.unknown"), DEFAULT);
        let mut sorted: Vec<_> = TYPES.iter().map(|(e, _)| *e).collect();
        sorted.sort_unstable();
        assert_eq!(sorted, TYPES.iter().map(|(e, _)| *e).collect::<Vec<_>>());
    }
}
