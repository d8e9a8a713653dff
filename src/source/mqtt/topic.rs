//! Topic templates → subscription filters and topic → station. Pure: no I/O.
//!
//! A template is a topic with `{station}` standing for the station id, e.g. `stations/{station}/data`; it may also
//! use MQTT wildcards (`+`, `#`). A station may instead have its own topic (`[station.mqtt] topic = "…"`), which
//! wins over the templates. A topic that names no configured station is not a reading: the caller quarantines it.

use std::collections::{BTreeSet, HashMap};

use crate::model::StationId;

/// Why a topic does not lead to a station.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic {topic:?} names station {station:?}, which is not configured")]
    UnknownStation { topic: String, station: String },
    #[error("topic {0:?} matches no station topic or template of this broker")]
    NoMatch(String),
}

/// One template split into its `/` levels.
#[derive(Debug, Clone)]
struct Template {
    levels: Vec<Level>,
}

#[derive(Debug, Clone, PartialEq)]
enum Level {
    Exact(String),
    /// `+`
    Any,
    /// `#` (only last)
    Rest,
    /// A level holding `{station}`, with the text around it.
    Station {
        prefix: String,
        suffix: String,
    },
}

/// Maps the topics of one broker to stations.
#[derive(Debug, Clone)]
pub struct TopicRouter {
    templates: Vec<Template>,
    exact: HashMap<String, StationId>,
    known: HashMap<String, StationId>,
    filters: Vec<String>,
}

impl TopicRouter {
    /// `templates`: the broker's topic templates. `station_topics`: stations with their own topic on this broker.
    /// `known`: every configured station (a template may name any of them).
    pub fn new(
        templates: &[String],
        station_topics: &[(StationId, String)],
        known: &[StationId],
    ) -> Self {
        let parsed: Vec<Template> = templates.iter().map(|t| Template::parse(t)).collect();
        let mut filters: BTreeSet<String> = parsed.iter().map(Template::filter).collect();
        let mut exact = HashMap::new();
        for (id, topic) in station_topics {
            exact.insert(topic.clone(), id.clone());
            // Overlapping subscriptions can deliver a message twice; subscribe only to what no filter covers.
            if !filters.iter().any(|f| filter_matches(f, topic)) {
                filters.insert(topic.clone());
            }
        }
        TopicRouter {
            templates: parsed,
            exact,
            known: known
                .iter()
                .map(|s| (s.as_str().to_string(), s.clone()))
                .collect(),
            filters: filters.into_iter().collect(),
        }
    }

    /// Subscription filters, with `$share/<group>/` in front when the broker has a share group.
    pub fn filters(&self, share_group: Option<&str>) -> Vec<String> {
        self.filters
            .iter()
            .map(|f| match share_group {
                Some(g) => format!("$share/{g}/{f}"),
                None => f.clone(),
            })
            .collect()
    }

    /// The station a message on `topic` belongs to.
    pub fn station(&self, topic: &str) -> Result<StationId, TopicError> {
        if let Some(id) = self.exact.get(topic) {
            return Ok(id.clone());
        }
        let mut named = None;
        for t in &self.templates {
            if let Some(name) = t.capture(topic) {
                if let Some(id) = self.known.get(name) {
                    return Ok(id.clone());
                }
                named.get_or_insert(name);
            }
        }
        Err(match named {
            Some(station) => TopicError::UnknownStation {
                topic: topic.to_string(),
                station: station.to_string(),
            },
            None => TopicError::NoMatch(topic.to_string()),
        })
    }
}

impl Template {
    fn parse(t: &str) -> Self {
        let levels = t
            .split('/')
            .map(|l| match l {
                "+" => Level::Any,
                "#" => Level::Rest,
                _ => match l.split_once("{station}") {
                    Some((prefix, suffix)) => Level::Station {
                        prefix: prefix.to_string(),
                        suffix: suffix.to_string(),
                    },
                    None => Level::Exact(l.to_string()),
                },
            })
            .collect();
        Template { levels }
    }

    fn filter(&self) -> String {
        self.levels
            .iter()
            .map(|l| match l {
                Level::Exact(s) => s.as_str(),
                Level::Any | Level::Station { .. } => "+",
                Level::Rest => "#",
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// If `topic` matches, the text standing for `{station}` (empty when the template has none).
    fn capture<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let mut parts = topic.split('/');
        let mut station = Some("");
        for level in &self.levels {
            match level {
                Level::Rest => return station.filter(|s| !s.is_empty()),
                _ => {
                    let part = parts.next()?;
                    match level {
                        Level::Exact(s) if s != part => return None,
                        Level::Station { prefix, suffix } => {
                            let name = part.strip_prefix(prefix.as_str())?;
                            let name = name.strip_suffix(suffix.as_str())?;
                            if name.is_empty() {
                                return None;
                            }
                            station = Some(name);
                        }
                        _ => {}
                    }
                }
            }
        }
        if parts.next().is_some() {
            return None;
        }
        // A template without `{station}` names no station; only per-station topics route it.
        station.filter(|s| !s.is_empty())
    }
}

/// Whether an MQTT subscription filter matches a topic.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match (f, t.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(p)) if f == p => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> StationId {
        StationId::parse(s).unwrap()
    }

    #[test]
    fn templates_route_known_stations_and_name_unknown_ones() {
        let r = TopicRouter::new(
            &[
                "stations/{station}/data".into(),
                "dl/st-{station}.json/#".into(),
            ],
            &[(id("BN_C_D"), "legacy/plant4".into())],
            &[id("BN_A_B"), id("BN_C_D")],
        );
        assert_eq!(
            r.filters(None),
            ["dl/+/#", "legacy/plant4", "stations/+/data"]
        );
        assert_eq!(
            r.filters(Some("quantrac")),
            [
                "$share/quantrac/dl/+/#",
                "$share/quantrac/legacy/plant4",
                "$share/quantrac/stations/+/data"
            ]
        );
        assert_eq!(r.station("stations/BN_A_B/data"), Ok(id("BN_A_B")));
        assert_eq!(r.station("dl/st-BN_A_B.json/x/y"), Ok(id("BN_A_B")));
        assert_eq!(r.station("legacy/plant4"), Ok(id("BN_C_D")));
        assert_eq!(
            r.station("stations/BN_X_Y/data"),
            Err(TopicError::UnknownStation {
                topic: "stations/BN_X_Y/data".into(),
                station: "BN_X_Y".into()
            })
        );
        for bad in [
            "stations/BN_A_B",
            "stations/BN_A_B/data/x",
            "other",
            "stations//data",
        ] {
            assert!(r.station(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn station_topics_covered_by_a_template_are_not_subscribed_twice() {
        let r = TopicRouter::new(
            &["stations/{station}/data".into()],
            &[(id("BN_A_B"), "stations/BN_A_B/data".into())],
            &[id("BN_A_B")],
        );
        assert_eq!(r.filters(None), ["stations/+/data"]);
    }

    #[test]
    fn filter_matching() {
        assert!(filter_matches("a/+/c", "a/b/c"));
        assert!(filter_matches("a/#", "a/b/c"));
        assert!(filter_matches("#", "a"));
        assert!(!filter_matches("a/+", "a/b/c"));
        assert!(!filter_matches("a/b", "a/c"));
    }
}
