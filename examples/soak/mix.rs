//! The soak's traffic mix: which kinds of request it sends and how often, so that one
//! run covers every path a person (or an app) takes, in proportions the server can sustain.

use anyhow::{bail, Context, Result};

use crate::Rng;

/// One kind of request the soak sends; each exercises a different path of the server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A new signed text message: saved as a memory, answered inline.
    Text,
    /// An exact redelivery of a text already answered (same `MessageSid`, same bytes), as
    /// Twilio retries: must answer as the first delivery did and store nothing new.
    Duplicate,
    /// `/search <words>`: full-text and vector search, the query embedded.
    Search,
    /// `/list last week`: a range read in the user's zone.
    List,
    /// A question ending in `?`: a search in the user's own words.
    Question,
    /// A photo: answered empty, then fetched from the fake Twilio, decoded and replied to.
    Photo,
    /// A voice note: answered empty, then fetched, decoded, transcribed (or found a
    /// duplicate) and replied to.
    Voice,
    /// `POST /memories` with the API key: a text memory through the REST API.
    ApiCreate,
    /// `GET /memories?query=` with the API key: the same search as `/search`.
    ApiSearch,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 9] = [
        Kind::Text,
        Kind::Duplicate,
        Kind::Search,
        Kind::List,
        Kind::Question,
        Kind::Photo,
        Kind::Voice,
        Kind::ApiCreate,
        Kind::ApiSearch,
    ];

    /// The name used by `--mix`, the report and `--out`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Duplicate => "duplicate",
            Kind::Search => "search",
            Kind::List => "list",
            Kind::Question => "question",
            Kind::Photo => "photo",
            Kind::Voice => "voice",
            Kind::ApiCreate => "api_create",
            Kind::ApiSearch => "api_search",
        }
    }

    /// Position in [`Kind::ALL`], for per-kind arrays.
    pub fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// The kind called `name` in `--mix`.
    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Relative weights of the kinds (per mille by default).
///
/// The default keeps to what half the text webhook's maximum rate can carry on two cores:
/// anything that embeds a query (`/search`, questions, REST search: ~8 ms of MiniLM each,
/// on one thread) stays near 1 % in all, and media near 1 %, because each photo is
/// decoded and hashed and each medium fetched and replied to through the fake Twilio.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    weights: [u32; Kind::ALL.len()],
}

/// The default mix, per mille, in [`Kind::ALL`] order.
const DEFAULT_WEIGHTS: [u32; Kind::ALL.len()] = [805, 100, 4, 10, 3, 5, 5, 65, 3];

impl Default for Mix {
    fn default() -> Self {
        Self { weights: DEFAULT_WEIGHTS }
    }
}

impl Mix {
    /// The default mix with `spec`'s weights instead (`"voice=0,text=700"`): a kind left
    /// out keeps its default weight, so that one kind can be turned off or up alone.
    ///
    /// # Errors
    /// An unknown kind, a weight that is not a whole number, or every weight zero.
    pub fn with_overrides(spec: &str) -> Result<Self> {
        let mut mix = Mix::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').with_context(|| format!("--mix: `{part}` is not kind=weight"))?;
            let kind = Kind::parse(name.trim()).with_context(|| {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("--mix: unknown kind `{name}` (known: {})", known.join(", "))
            })?;
            mix.weights[kind.index()] =
                weight.trim().parse().with_context(|| format!("--mix: `{weight}` is not a whole number"))?;
        }
        if mix.total() == 0 {
            bail!("--mix: every weight is zero");
        }
        Ok(mix)
    }

    /// Sum of the weights.
    fn total(&self) -> u64 {
        self.weights.iter().map(|&w| u64::from(w)).sum()
    }

    /// The share of `kind`, in percent, for the report.
    pub fn percent(&self, kind: Kind) -> f64 {
        100.0 * f64::from(self.weights[kind.index()]) / self.total() as f64
    }

    /// One kind drawn with the weights.
    pub fn pick(&self, rng: &mut Rng) -> Kind {
        let mut draw = rng.below(self.total());
        for kind in Kind::ALL {
            let w = u64::from(self.weights[kind.index()]);
            if draw < w {
                return kind;
            }
            draw -= w;
        }
        Kind::Text
    }

    /// "text 80.5 %, duplicate 10.0 %, …" for the report's headline (kinds at 0 left out).
    pub fn describe(&self) -> String {
        let parts: Vec<String> = Kind::ALL
            .iter()
            .filter(|k| self.weights[k.index()] > 0)
            .map(|k| format!("{} {:.1} %", k.name(), self.percent(*k)))
            .collect();
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mix_is_per_mille() {
        assert_eq!(Mix::default().total(), 1000);
    }

    #[test]
    fn overrides_change_only_the_kinds_named() {
        let mix = Mix::with_overrides("voice=0, text=700").unwrap();
        assert_eq!(mix.weights[Kind::Voice.index()], 0);
        assert_eq!(mix.weights[Kind::Text.index()], 700);
        assert_eq!(mix.weights[Kind::Duplicate.index()], DEFAULT_WEIGHTS[Kind::Duplicate.index()]);
        assert!(Mix::with_overrides("sms=3").is_err());
        assert!(Mix::with_overrides("text=lots").is_err());
        let all_zero: Vec<String> = Kind::ALL.iter().map(|k| format!("{}=0", k.name())).collect();
        assert!(Mix::with_overrides(&all_zero.join(",")).is_err());
    }

    #[test]
    fn picks_follow_the_weights_and_never_a_kind_at_zero() {
        let mix = Mix::with_overrides(
            "voice=0,duplicate=500,text=500,search=0,list=0,question=0,photo=0,api_create=0,api_search=0",
        )
        .unwrap();
        let mut rng = Rng::new(7);
        let mut counts = [0u32; Kind::ALL.len()];
        for _ in 0..10_000 {
            counts[mix.pick(&mut rng).index()] += 1;
        }
        assert_eq!(counts[Kind::Voice.index()], 0);
        assert!((4_500..5_500).contains(&counts[Kind::Duplicate.index()]), "{counts:?}");
        assert_eq!(counts[Kind::Text.index()] + counts[Kind::Duplicate.index()], 10_000);
    }
}
