//! The figures a benchmark measured: printed as a table, or as one JSON object per figure.

/// One measured figure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Figure {
    /// The benchmark (`producer`, `consumer`, `e2e`, `engine`).
    pub bench: &'static str,
    /// What was measured.
    pub figure: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

/// The figures of one benchmark run, in the order they were measured.
#[derive(Debug, Default)]
pub struct Figures {
    bench: &'static str,
    rows: Vec<Figure>,
}

impl Figures {
    /// No figures yet, for `bench`.
    pub fn new(bench: &'static str) -> Self {
        Figures {
            bench,
            rows: Vec::new(),
        }
    }

    /// Adds a figure.
    pub fn add(&mut self, figure: impl Into<String>, value: f64, unit: &'static str) {
        self.rows.push(Figure {
            bench: self.bench,
            figure: figure.into(),
            value,
            unit,
        });
    }

    /// The figures so far.
    pub fn rows(&self) -> &[Figure] {
        &self.rows
    }

    /// A text table (`--json` off) or JSON lines.
    pub fn render(&self, json: bool) -> String {
        if json {
            return self
                .rows
                .iter()
                .filter_map(|r| serde_json::to_string(r).ok())
                .map(|l| l + "\n")
                .collect();
        }
        let width = self.rows.iter().map(|r| r.figure.len()).max().unwrap_or(0);
        let mut out = format!("{:<width$}  {:>14}  unit\n", self.bench, "value");
        for r in &self.rows {
            let value = if r.value.fract() == 0.0 || r.value.abs() >= 100.0 {
                format!("{:.0}", r.value)
            } else {
                format!("{:.2}", r.value)
            };
            out.push_str(&format!("{:<width$}  {value:>14}  {}\n", r.figure, r.unit));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_render_as_a_table_and_as_json_lines() {
        let mut f = Figures::new("e2e");
        f.add("latency p99", 141.0, "ms");
        f.add("cpu per million", 1.25, "s");
        let table = f.render(false);
        assert!(table.contains("latency p99"), "{table}");
        assert!(table.contains("1.25"), "{table}");
        let json = f.render(true);
        let lines: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["figure"], "latency p99");
        assert_eq!(lines[0]["value"], 141.0);
        assert_eq!(lines[1]["bench"], "e2e");
    }
}
