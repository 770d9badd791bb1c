//! What the text report shows of the report: the options that shape it
//! (the JSON report has everything).

/// The text report's options.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Every section and row, also where nothing happened.
    pub all: bool,
    /// Log2 histograms of calls and of stretches ready, asleep, blocked.
    pub histogram: bool,
    /// Details of these threads only.
    pub threads: Option<ThreadFilter>,
    /// The N threads with the most kernel delay only.
    pub top: Option<usize>,
}

impl View {
    /// Whether --threads (if given) asks for the details of this thread.
    pub fn chosen(&self, tid: u32, name: &str) -> bool {
        self.threads
            .as_ref()
            .is_none_or(|filter| filter.matches(tid, name))
    }
}

/// The threads --threads asks for.
#[derive(Debug, Clone)]
pub enum ThreadFilter {
    Tids(Vec<u32>),
    Name(regex_lite::Regex),
}

/// As the user gave it.
impl std::fmt::Display for ThreadFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThreadFilter::Tids(tids) => {
                let tids: Vec<String> = tids.iter().map(u32::to_string).collect();
                f.write_str(&tids.join(","))
            }
            ThreadFilter::Name(regex) => f.write_str(regex.as_str()),
        }
    }
}

impl ThreadFilter {
    pub fn matches(&self, tid: u32, name: &str) -> bool {
        match self {
            ThreadFilter::Tids(tids) => tids.contains(&tid),
            ThreadFilter::Name(regex) => regex.is_match(name),
        }
    }
}
