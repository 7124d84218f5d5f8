//! Reading the text of a file ringpoll reads; a leaf every config module may use.

use std::path::Path;

/// The text of a file ringpoll reads (config, hosts file, file_sd, secret), without the UTF-8
/// byte-order mark an editor may have saved at its start.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path).map(without_bom)
}

/// `text` without a leading UTF-8 byte-order mark.
pub fn without_bom(text: String) -> String {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    }
}
