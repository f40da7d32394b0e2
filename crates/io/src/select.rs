//! Picking some channels of an input (a recorder's unused tracks, a logger's time stamp
//! left out), shared by the WAV and CSV readers.

/// Which channels of an input to use, in which order: numbers from 1 and ranges (`2-7`,
/// `1,3,5`), and for a CSV with a header row also column names (`acc_x,acc_y`, or mixed:
/// `2-4,temp`). Parsed from the command line with [`str::parse`] and written back by
/// `Display` in the same form; the default is every channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelSelection(Vec<ColumnRef>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum ColumnRef {
    /// One-based, inclusive.
    Range(usize, usize),
    Name(String),
}

impl ChannelSelection {
    /// Every column.
    pub fn all() -> Self {
        Self::default()
    }

    /// The channels at these zero-based indices, in this order (runs written as ranges).
    pub fn from_indices(indices: &[usize]) -> Self {
        let mut items: Vec<ColumnRef> = Vec::new();
        for &i in indices {
            match items.last_mut() {
                Some(ColumnRef::Range(_, to)) if *to == i => *to = i + 1,
                _ => items.push(ColumnRef::Range(i + 1, i + 1)),
            }
        }
        Self(items)
    }

    /// Whether this selects every column.
    pub fn is_all(&self) -> bool {
        self.0.is_empty()
    }

    /// The first column asked for by name, if any.
    pub fn first_name(&self) -> Option<&str> {
        self.0.iter().find_map(|c| match c {
            ColumnRef::Name(name) => Some(name.as_str()),
            ColumnRef::Range(..) => None,
        })
    }

    /// Zero-based indices, in the order given, for an input whose channels have no names
    /// and whose width is not known yet (a live device, opened wide enough afterwards);
    /// `None` for every channel.
    pub fn numbers(&self) -> std::result::Result<Option<Vec<usize>>, String> {
        if self.is_all() {
            return Ok(None);
        }
        if let Some(name) = self.first_name() {
            return Err(format!("'{name}': channels here have no names; pick them by number (from 1)"));
        }
        let widest = self.0.iter().map(|c| if let ColumnRef::Range(_, to) = c { *to } else { 0 }).max();
        self.resolve(widest.unwrap_or(0), None, "channel").map(Some)
    }

    /// Zero-based indices, in the order given, against a file with `width` columns (or
    /// channels: `noun`) and (if it has one) the header `names`.
    pub(crate) fn resolve(
        &self,
        width: usize,
        names: Option<&csv::StringRecord>,
        noun: &str,
    ) -> std::result::Result<Vec<usize>, String> {
        if self.is_all() {
            return Ok((0..width).collect());
        }
        let mut out = Vec::new();
        for item in &self.0 {
            match item {
                ColumnRef::Range(from, to) => {
                    if *to > width {
                        return Err(format!("{noun} {to} asked for, but the file has {width} {noun}s"));
                    }
                    out.extend(from - 1..*to);
                }
                ColumnRef::Name(name) => {
                    let Some(names) = names else {
                        return Err(format!("column '{name}' asked for by name, but the file has no header row"));
                    };
                    let at = names.iter().position(|n| n == name).ok_or_else(|| {
                        let known: Vec<&str> = names.iter().filter(|n| !n.is_empty()).collect();
                        format!("no column named '{name}' (the header has: {})", known.join(", "))
                    })?;
                    out.push(at);
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = out.iter().find(|c| !seen.insert(**c)) {
            return Err(format!("{noun} {} is selected twice", twice + 1));
        }
        Ok(out)
    }
}

/// The same text [`str::parse`] reads: `acc_x,2-4`.
impl std::fmt::Display for ChannelSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match item {
                ColumnRef::Range(a, b) if a == b => write!(f, "{a}")?,
                ColumnRef::Range(a, b) => write!(f, "{a}-{b}")?,
                ColumnRef::Name(name) => f.write_str(name)?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for ChannelSelection {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let mut items = Vec::new();
        for item in text.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(format!("empty column in '{text}'"));
            }
            let number = |t: &str| t.trim().parse::<usize>().ok();
            let range = match item.split_once('-') {
                Some((a, b)) => number(a).zip(number(b)),
                None => number(item).map(|n| (n, n)),
            };
            items.push(match range {
                Some((0, _)) | Some((_, 0)) => return Err(format!("'{item}': column numbers start at 1")),
                Some((a, b)) if a > b => return Err(format!("'{item}': the range runs backwards")),
                Some((a, b)) => ColumnRef::Range(a, b),
                None => ColumnRef::Name(item.to_string()),
            });
        }
        Ok(Self(items))
    }
}

#[cfg(test)]
mod tests {
    use super::ChannelSelection;

    #[test]
    fn numbers_for_inputs_without_names() {
        let pick = |s: &str| s.parse::<ChannelSelection>().unwrap().numbers();
        assert_eq!(ChannelSelection::all().numbers(), Ok(None));
        assert_eq!(pick("2,4-5"), Ok(Some(vec![1, 3, 4])));
        assert_eq!(pick("3,1"), Ok(Some(vec![2, 0])));
        assert_eq!(pick("1-3,2"), Err("channel 2 is selected twice".into()));
        for (indices, text) in [(&[1usize, 3, 4, 5][..], "2,4-6"), (&[2, 0, 1], "3,1-2"), (&[7], "8")] {
            let selection = ChannelSelection::from_indices(indices);
            assert_eq!(selection.to_string(), text);
            assert_eq!(selection.numbers(), Ok(Some(indices.to_vec())));
        }
        let err = pick("2,mic").unwrap_err();
        assert!(err.contains("'mic'") && err.contains("by number"), "{err}");
    }
}
