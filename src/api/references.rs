//! What each kind refers to, declared once beside its type (design.md §4: every `…Ref` has an
//! `…Id` alternative). The reconciler derives from these alone which objects wake which (the
//! watches), which dependents hold a deletion (child objects, and users of an image) and the
//! ownerReferences children carry, so a new kind that refers to an image is waited for without
//! a special case.

/// What the referred object is to the referrer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Holds the referrer in Azure (a gallery its definitions, a definition its versions): the
    /// referrer is created only under a Ready parent, owned by it, and deleted before it.
    Parent,
    /// The image the referrer boots from: its users hold the image (and what holds the image)
    /// until they are gone.
    Image,
    /// What a version is captured from: needed to create it, holding nothing afterwards.
    Source,
}

/// How a reference names its object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `metadata.name` of an object of ours in the same namespace.
    Name(String),
    /// An ARM resource ID (an object of ours, or anything else in Azure).
    Id(String),
}

/// One reference of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub role: Role,
    /// The kinds of ours it can name (one for a name; an ID may name any of these, or none).
    pub kinds: &'static [&'static str],
    /// The field it comes from (`spec.galleryRef`), for messages.
    pub field: &'static str,
    pub target: Target,
    /// Resolved by the reconciler (a `latest` turned into a version ID, kept in status) rather
    /// than written by the user: it holds what it names, but never gates or wakes creation.
    pub resolved: bool,
}

impl Reference {
    pub fn name(
        role: Role,
        kind: &'static [&'static str],
        field: &'static str,
        name: &str,
    ) -> Self {
        Self {
            role,
            kinds: kind,
            field,
            target: Target::Name(name.to_string()),
            resolved: false,
        }
    }

    pub fn id(role: Role, kinds: &'static [&'static str], field: &'static str, id: &str) -> Self {
        Self {
            role,
            kinds,
            field,
            target: Target::Id(id.to_string()),
            resolved: false,
        }
    }

    /// The same reference, as one the reconciler resolved.
    pub fn resolved(mut self) -> Self {
        self.resolved = true;
        self
    }

    /// Whether it names the object `name` of `kind` by name.
    pub fn names(&self, kind: &str, name: &str) -> bool {
        matches!(&self.target, Target::Name(n) if n == name && self.kinds.contains(&kind))
    }

    /// Whether it names, by ARM ID, the resource `id` of `kind` or one under it (a version of
    /// a definition, an image in a gallery). IDs compare case-blind, as ARM's do.
    pub fn lies_under(&self, kind: &str, id: Option<&str>) -> bool {
        match (&self.target, id) {
            (Target::Id(candidate), Some(id)) if self.kinds.contains(&kind) => under(candidate, id),
            _ => false,
        }
    }

    /// Whether it names the object (`kind`, `name`, ARM `id`) or something under it.
    pub fn reaches(&self, kind: &str, name: &str, id: Option<&str>) -> bool {
        self.names(kind, name) || self.lies_under(kind, id)
    }
}

/// Whether ARM ID `candidate` is `id` or a resource under it (case-blind; a prefix that is not
/// a whole segment is not a parent).
pub fn under(candidate: &str, id: &str) -> bool {
    let (c, id) = (candidate.to_ascii_lowercase(), id.to_ascii_lowercase());
    c == id || c.starts_with(&format!("{id}/"))
}

/// What a kind refers to, implemented beside each kind's type.
pub trait Refers {
    /// The kinds of ours its objects can refer to (the watches are wired from these).
    const REFERS_TO: &'static [&'static str];
    /// The kinds it names as its parent (`Role::Parent`): a parent's children are looked for
    /// only among the kinds that can have it as parent, not in every cached object.
    const PARENTS: &'static [&'static str] = &[];
    /// The kinds it boots from (`Role::Image`): only kinds with some can use an image.
    const IMAGES: &'static [&'static str] = &[];
    /// The references of this object: from its spec, and those the reconciler resolved.
    fn references(&self) -> Vec<Reference>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const GALLERY: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g";

    #[test]
    fn ids_reach_what_they_lie_under_case_blind_and_by_whole_segments() {
        let r = Reference::id(
            Role::Image,
            &["ImageVersion"],
            "spec.image.imageId",
            &format!("{}/IMAGES/u/versions/1.0.0", GALLERY.to_uppercase()),
        );
        assert!(r.lies_under("ImageVersion", Some(GALLERY)));
        assert!(!r.lies_under("ImageDefinition", Some(GALLERY)), "kind");
        assert!(!r.lies_under("ImageVersion", Some(&format!("{GALLERY}2"))));
        assert!(!r.lies_under("ImageVersion", None));
        let n = Reference::name(Role::Parent, &["Gallery"], "spec.galleryRef", "g");
        assert!(n.names("Gallery", "g") && !n.names("Gallery", "h"));
        assert!(!n.names("ImageDefinition", "g"));
    }
}
