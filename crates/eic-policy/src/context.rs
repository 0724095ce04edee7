use std::collections::BTreeMap;

/// Everything a policy can look at for one request: the action, the resource
/// ARN and the condition keys.
///
/// Key names are case-insensitive, as in IAM (`aws:ResourceTag/Team` and
/// `AWS:resourcetag/team` are the same key); values are stored as given.
/// A key is single-valued when it holds one value and multi-valued when it
/// holds several. A key set to an empty list is absent, because IAM treats an
/// empty value set and a missing key alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    action: String,
    // Lowercased once here so that matching the action against every
    // statement needs no per-statement case folding.
    action_lower: String,
    resource: String,
    keys: BTreeMap<String, Vec<String>>,
}

impl RequestContext {
    /// A context for `action` (e.g. `ec2-instance-connect:SendSSHPublicKey`)
    /// on `resource` (an ARN), with no condition keys.
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        let action = action.into();
        RequestContext {
            action_lower: action.to_lowercase(),
            action,
            resource: resource.into(),
            keys: BTreeMap::new(),
        }
    }

    /// Builder form of [`RequestContext::set`].
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    /// Builder form of [`RequestContext::set_values`].
    #[must_use]
    pub fn with_values<I, V>(mut self, key: &str, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        self.set_values(key, values);
        self
    }

    /// Sets a single-valued key, replacing any earlier value.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.keys.insert(key.to_lowercase(), vec![value.into()]);
    }

    /// Sets a multi-valued key; an empty list removes the key.
    pub fn set_values<I, V>(&mut self, key: &str, values: I)
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        if values.is_empty() {
            self.keys.remove(&key.to_lowercase());
        } else {
            self.keys.insert(key.to_lowercase(), values);
        }
    }

    /// Sets a tag of the target instance under both names IAM offers for it,
    /// `aws:ResourceTag/<tag>` and `ec2:ResourceTag/<tag>`.
    pub fn set_resource_tag(&mut self, tag: &str, value: impl Into<String>) {
        let value = value.into();
        self.set(&format!("ec2:ResourceTag/{tag}"), value.clone());
        self.set(&format!("aws:ResourceTag/{tag}"), value);
    }

    /// Removes a key.
    pub fn remove(&mut self, key: &str) {
        self.keys.remove(&key.to_lowercase());
    }

    /// The values of a key (case-insensitive name), if present.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.lookup(&key.to_lowercase())
    }

    /// The action as given to [`RequestContext::new`].
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The resource ARN as given to [`RequestContext::new`].
    pub fn resource(&self) -> &str {
        &self.resource
    }

    pub(crate) fn action_lower(&self) -> &str {
        &self.action_lower
    }

    /// Lookup by a key name that the policy parser already lowercased.
    pub(crate) fn lookup(&self, lowercase_key: &str) -> Option<&[String]> {
        self.keys.get(lowercase_key).map(Vec::as_slice)
    }
}
