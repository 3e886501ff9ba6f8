//! The layers as protocol 5 sends them: the shape agents of protocol 5
//! decode (postcard is not self-describing, so it must not change). A
//! console sends them to such agents without term time; an agent reads a
//! layers file saved before it was upgraded through them.

use serde::{Deserialize, Serialize};

use crate::message::Source;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitoringHours {
    pub days: [bool; 7],
    pub start_minute: u16,
    pub end_minute: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    pub min_severity: Option<u8>,
    pub categories: Vec<(String, bool)>,
    pub severity_shift: Vec<(String, i8)>,
    pub sources: Vec<(Source, bool)>,
    pub screenshots: Option<bool>,
    pub page_reading_excluded: Vec<String>,
    pub hours: Option<MonitoringHours>,
    pub outside_hours: super::OutsideHours,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub group: String,
    pub overrides: Overrides,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLayers {
    pub version: u64,
    pub layers: Vec<Layer>,
    pub accounts: Vec<(String, Vec<String>)>,
    pub device_groups: Vec<String>,
}

impl From<&super::GroupLayers> for GroupLayers {
    /// Term time and year groups' AUPs dropped: a protocol 5 agent holds
    /// term-time hours every week and shows the audience's AUP.
    fn from(l: &super::GroupLayers) -> GroupLayers {
        GroupLayers {
            version: l.version,
            layers: l
                .layers
                .iter()
                .map(|layer| {
                    let o = &layer.overrides;
                    Layer {
                        group: layer.group.clone(),
                        overrides: Overrides {
                            min_severity: o.min_severity,
                            categories: o.categories.clone(),
                            severity_shift: o.severity_shift.clone(),
                            sources: o.sources.clone(),
                            screenshots: o.screenshots,
                            page_reading_excluded: o.page_reading_excluded.clone(),
                            hours: o.hours.as_ref().map(|h| MonitoringHours {
                                days: h.days,
                                start_minute: h.start_minute,
                                end_minute: h.end_minute,
                            }),
                            outside_hours: o.outside_hours,
                        },
                    }
                })
                .collect(),
            accounts: l.accounts.clone(),
            device_groups: l.device_groups.clone(),
        }
    }
}

impl From<GroupLayers> for super::GroupLayers {
    fn from(l: GroupLayers) -> super::GroupLayers {
        super::GroupLayers {
            version: l.version,
            layers: l
                .layers
                .into_iter()
                .map(|layer| {
                    let o = layer.overrides;
                    super::Layer {
                        group: layer.group,
                        overrides: super::Overrides {
                            min_severity: o.min_severity,
                            categories: o.categories,
                            severity_shift: o.severity_shift,
                            sources: o.sources,
                            screenshots: o.screenshots,
                            page_reading_excluded: o.page_reading_excluded,
                            hours: o.hours.map(|h| super::MonitoringHours {
                                days: h.days,
                                start_minute: h.start_minute,
                                end_minute: h.end_minute,
                                term_time: false,
                            }),
                            outside_hours: o.outside_hours,
                        },
                    }
                })
                .collect(),
            accounts: l.accounts,
            device_groups: l.device_groups,
            terms: Vec::new(),
            aups: Vec::new(),
        }
    }
}
