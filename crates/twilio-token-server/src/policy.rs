//! Policy: which identities and groups get which grants, from which profile, for how long.

use twilio_access_token::{SidKind, Ttl, validate_sid};

use crate::config::{ConfigError, GrantsSection, RuleSection, parse_ttl, patterns};
use crate::pattern::Pattern;

/// The grant types a request can ask for, by the names used in requests.
pub const GRANT_NAMES: [&str; 5] = ["chat", "video", "voice", "sync", "task_router"];

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's position in the configuration, for messages.
    pub index: usize,
    identities: Vec<Pattern>,
    groups: Vec<String>,
    /// The profile tokens are minted with.
    pub profile: String,
    /// TTL when the request names none.
    pub ttl: Ttl,
    /// The largest TTL a request may ask for.
    pub max_ttl: Ttl,
    /// The grants issued.
    pub grants: GrantsSection,
    /// Room patterns a request may ask for.
    pub rooms: Vec<Pattern>,
}

impl Rule {
    /// Returns true when the rule applies to the identity or one of the groups.
    pub fn matches(&self, identity: &str, groups: &[String]) -> bool {
        self.identities
            .iter()
            .any(|pattern| pattern.matches(identity))
            || self.groups.iter().any(|group| groups.contains(group))
    }

    /// Returns the names of the grants the rule issues, in request-name order.
    pub fn grant_names(&self) -> Vec<&'static str> {
        let grants = &self.grants;
        let present = [
            grants.chat.is_some(),
            grants.video.is_some(),
            grants.voice.is_some(),
            grants.sync.is_some(),
            grants.task_router.is_some(),
        ];
        GRANT_NAMES
            .iter()
            .zip(present)
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect()
    }
}

/// The ordered list of rules.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

impl Policy {
    /// Validates the rules against the profile names.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] naming the rule and key for a rule that matches no identity or group, names
    /// an unknown profile, has a TTL out of range or a max_ttl below its TTL, or has a bad SID.
    pub fn from_config(sections: &[RuleSection], profiles: &[String]) -> Result<Self, ConfigError> {
        let mut rules = Vec::with_capacity(sections.len());
        for (index, section) in sections.iter().enumerate() {
            rules.push(rule_from_config(index, section, profiles)?);
        }
        Ok(Policy { rules })
    }

    /// Returns the first rule that applies to the identity or its groups.
    pub fn rule_for(&self, identity: &str, groups: &[String]) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|rule| rule.matches(identity, groups))
    }

    /// Returns the rules in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

fn rule_from_config(
    index: usize,
    section: &RuleSection,
    profiles: &[String],
) -> Result<Rule, ConfigError> {
    let key = format!("policy.rules[{index}]");
    if section.identities.is_empty() && section.groups.is_empty() {
        return Err(ConfigError::new(
            &key,
            "the rule matches nobody: set identities (such as [\"*\"]) or groups",
        ));
    }
    if !profiles.contains(&section.profile) {
        return Err(ConfigError::new(
            format!("{key}.profile"),
            format!(
                "no profile is named {:?}: the profiles are {}",
                section.profile,
                profiles.join(", ")
            ),
        ));
    }
    let ttl = parse_ttl(format!("{key}.ttl"), section.ttl.unwrap_or(3600))?;
    let max_ttl = parse_ttl(
        format!("{key}.max_ttl"),
        section.max_ttl.unwrap_or(ttl.as_secs()),
    )?;
    if max_ttl < ttl {
        return Err(ConfigError::new(
            format!("{key}.max_ttl"),
            format!("max_ttl {max_ttl} is below ttl {ttl}: raise max_ttl or lower ttl"),
        ));
    }
    if let Some(role) = section
        .grants
        .chat
        .as_ref()
        .and_then(|chat| chat.role_sid.as_ref())
    {
        validate_sid(SidKind::Role, role).map_err(|error| {
            ConfigError::new(format!("{key}.grants.chat.role_sid"), error.to_string())
        })?;
    }
    let rooms = section
        .grants
        .video
        .as_ref()
        .map(|video| patterns(&video.rooms))
        .unwrap_or_default();
    Ok(Rule {
        index,
        identities: patterns(&section.identities),
        groups: section.groups.clone(),
        profile: section.profile.clone(),
        ttl,
        max_ttl,
        grants: section.grants.clone(),
        rooms,
    })
}
