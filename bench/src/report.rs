//! Markdown output: tables and number formats.

/// A Markdown table; cells are escaped so a `|` in a value cannot break it.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns named in `header`; a name starting with `>` is right-aligned
    /// (numbers), the `>` is not shown.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header
                .iter()
                .map(|h| h.trim_start_matches('>').to_string())
                .collect(),
            right: header.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are left empty, extra cells are an error
    /// in the caller (panics, it is a bug).
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        assert!(
            cells.len() <= self.header.len(),
            "row has {} cells, table has {} columns",
            cells.len(),
            self.header.len()
        );
        let mut r: Vec<String> = cells.iter().map(|c| escape(c.as_ref())).collect();
        r.resize(self.header.len(), String::new());
        self.rows.push(r);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut s = String::from("|");
            for ((c, w), right) in cells.iter().zip(&widths).zip(&self.right) {
                let pad = w - c.chars().count();
                if *right {
                    s.push_str(&format!(" {}{} |", " ".repeat(pad), c));
                } else {
                    s.push_str(&format!(" {}{} |", c, " ".repeat(pad)));
                }
            }
            s.push('\n');
            s
        };
        let mut out = line(&self.header);
        out.push('|');
        for (w, right) in widths.iter().zip(&self.right) {
            let dashes = "-".repeat((*w).max(3));
            if *right {
                out.push_str(&format!(" {}: |", &dashes[1..]));
            } else {
                out.push_str(&format!(" {dashes} |"));
            }
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Bytes in decimal units (MB = 10^6), as rates are quoted.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

/// Seconds with sensible precision.
pub fn secs(s: f64) -> String {
    if s.is_nan() {
        "n/a".into()
    } else if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

/// A ratio as `1.23×`.
pub fn times(r: f64) -> String {
    if r.is_nan() || r.is_infinite() {
        "n/a".into()
    } else if r >= 100.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

/// MB/s from bytes and seconds.
pub fn mb_per_s(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 || secs.is_nan() {
        "n/a".into()
    } else {
        format!("{:.0} MB/s", bytes as f64 / 1e6 / secs)
    }
}

/// Whether a figure meets its target, for the tables.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_markdown() {
        let mut t = Table::new(&["case", ">time"]);
        t.row(&["rsync", "12.5 s"]);
        t.row(&["a|b", "1 s"]);
        t.row(&["short"]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "| case  |   time |");
        assert_eq!(lines[1], "| ----- | -----: |");
        assert_eq!(lines[2], "| rsync | 12.5 s |");
        assert_eq!(lines[3], "| a\\|b  |    1 s |");
        assert_eq!(lines[4], "| short |        |");
        // Every line has the same number of column separators.
        assert!(lines
            .iter()
            .all(|l| l.matches(" |").count() == 2 || l.contains("\\|")));
    }

    #[test]
    #[should_panic(expected = "row has 3 cells")]
    fn too_many_cells_is_a_bug() {
        Table::new(&["a", "b"]).row(&["1", "2", "3"]);
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(320_000_000), "320.0 MB");
        assert_eq!(bytes(3_200_000_000), "3.20 GB");
        assert_eq!(secs(1.234), "1.23 s");
        assert_eq!(secs(123.45), "123.5 s");
        assert_eq!(secs(f64::NAN), "n/a");
        assert_eq!(times(1.234), "1.23×");
        assert_eq!(times(f64::NAN), "n/a");
        assert_eq!(times(250.0), "250×");
        assert_eq!(mb_per_s(100_000_000, 2.0), "50 MB/s");
        assert_eq!(mb_per_s(1, 0.0), "n/a");
        assert_eq!(verdict(true), "met");
    }
}
