//! CSV for exports that staff open in spreadsheets: every cell is quoted,
//! and a cell that a spreadsheet would run as a formula is defused.

/// A CSV cell: quoted, and a leading `=`, `+`, `-`, `@`, tab or carriage
/// return defused with a `'`, so a spreadsheet never runs captured text
/// (a page title, a note) as a formula.
pub fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// One CSV line of cells, ending in CRLF as RFC 4180 has it.
pub fn line<'a>(cells: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = cells.into_iter().map(cell).collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_defused() {
        assert_eq!(cell("a\"b"), "\"a\"\"b\"");
        assert_eq!(cell("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(cell("bbc.co.uk"), "\"bbc.co.uk\"");
        assert_eq!(line(["a", "-1"]), "\"a\",\"'-1\"\r\n");
    }
}
