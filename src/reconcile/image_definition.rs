//! ImageDefinition: a gallery image definition, and its `latestVersion` in status.

use kube::ResourceExt;

use super::security::ImageSecurity;
use super::{
    Context, Error, Managed, Report, Step,
    comparison::{enum_str, merged_tags, same_instant, tags_cover},
    conditions::Outcome,
    deletion::delete_recorded,
    parts::{self, Part},
    steps::{self, Plan},
    tenancy::Target,
};
use crate::{
    api::{
        ImageDefinition, ImageDefinitionSpec, ImageVersion,
        image_definition::{Architecture, HyperVGeneration, OsState, OsType},
    },
    arm::{ArmClient, ResourceId, models, normalize_region, same_region},
};

impl Managed for ImageDefinition {
    common_accessors!("ImageDefinition");

    fn targets(&self) -> Vec<(&'static str, Target)> {
        let gallery = self.spec.gallery_id.clone();
        gallery
            .map(|id| ("spec.galleryId", Target::Resource(id)))
            .into_iter()
            .collect()
    }

    fn refresh(&self, ctx: &Context, report: &mut Report) {
        report.set("latestVersion", latest_version(ctx, self));
    }

    type Resolved = Resolved;

    async fn resolve(&self, ctx: &Context, report: &mut Report) -> Result<Resolved, Error> {
        self.refresh(ctx, report);
        let arm = ctx
            .arm_for(&self.namespace().unwrap_or_default(), &self.spec.options)
            .await?;
        let (gallery, gallery_location, gallery_sharing) =
            resolve_gallery(ctx, self, &arm, report).await?;
        let location = normalize_region(self.spec.location.as_deref().unwrap_or(&gallery_location));
        report.set("location", &location);
        ctx.check_regions(&arm, gallery.subscription(), [location.as_str()])
            .await?;
        let id = gallery.child(
            "images",
            &self
                .spec
                .azure_name
                .clone()
                .unwrap_or_else(|| self.name_any()),
        );
        Ok(Resolved {
            arm,
            id,
            location,
            gallery_sharing,
        })
    }

    fn validate(&self, resolved: &Resolved) -> Result<(), Error> {
        check_sharing(&self.spec, resolved.gallery_sharing.as_deref())
    }

    async fn apply(
        &self,
        _ctx: &Context,
        resolved: Resolved,
        report: &mut Report,
    ) -> Result<Step, Error> {
        let Resolved {
            arm, id, location, ..
        } = resolved;
        let plan = |observed: Option<&models::GalleryImage>| {
            // Azure cannot change these; adopting a definition that differs would fail every write.
            let conflicts = observed
                .map(|o| immutable_conflicts(&self.spec, o))
                .unwrap_or_default();
            if !conflicts.is_empty() {
                return Err(Error::InvalidSpec(format!(
                    "image definition {} in Azure has {}; Azure cannot change these: set them back, or give a new definition another name",
                    id.name(),
                    conflicts.join(", ")
                )));
            }
            Ok(plan(&self.spec, &location, observed))
        };
        let status = |image: Option<&models::GalleryImage>, report: &mut Report| {
            if let Some(image) = image {
                report.observe(&id, image);
                report.set("securityType", ImageSecurity::of_definition(image).as_str());
            }
        };
        let owner = steps::owner_of(self);
        let uid = self.uid().unwrap_or_default();
        let ensuring = vec![Part::main("image definition", &id).ensured(plan, status)];
        if let Some(step) = parts::ensure(&arm, report, &owner, &uid, ensuring).await? {
            return Ok(step);
        }
        // latestVersion follows versions as they turn Ready: each wakes this object through
        // the shared cache, so the news is there when it runs.
        Ok(Step::Done(Outcome::ready(format!(
            "image definition {} is ready",
            id.name()
        ))))
    }

    async fn cleanup(&self, ctx: &Context, report: &mut Report) -> Result<Step, Error> {
        // Its users and versions went first (`deletion::dependents_first`).
        delete_recorded(ctx, self, report, "image definition").await
    }
}

/// What a definition needs of its gallery.
pub struct Resolved {
    arm: ArmClient,
    id: ResourceId,
    /// Normalised: the spec's, or the gallery's.
    location: String,
    /// The gallery's sharing permissions, when known.
    gallery_sharing: Option<String>,
}

/// The gallery's ARM ID, region and sharing permissions (when known).
async fn resolve_gallery(
    ctx: &Context,
    def: &ImageDefinition,
    arm: &ArmClient,
    report: &mut Report,
) -> Result<(ResourceId, String, Option<String>), Error> {
    if let Some(id) = &def.spec.gallery_id {
        let id = ResourceId::parse(id)?;
        if let Some(location) = &def.spec.location {
            return Ok((id, location.clone(), None));
        }
        let gallery = arm.get::<models::Gallery>(&id).await?.ok_or_else(|| {
            Error::waiting_for_dependency(format!(
                "gallery {id} named by spec.galleryId does not exist (or this identity cannot see it)"
            ))
        })?;
        let sharing = gallery.props().sharing_profile.and_then(|s| s.permissions);
        return Ok((id, gallery.location.unwrap_or_default(), sharing));
    }
    let gallery = super::parents::resolve_parent::<_, crate::api::Gallery>(ctx, def, report)
        .await?
        .expect("the schema requires galleryRef or galleryId");
    let sharing = gallery
        .object
        .spec
        .sharing
        .as_ref()
        .map(|s| enum_str(&s.permissions));
    Ok((gallery.id, gallery.object.spec.location.clone(), sharing))
}

/// A gallery shared with others (direct or community) cannot hold TrustedLaunch or
/// ConfidentialVM definitions (azure-today §A.2): say so before writing (pure).
pub fn check_sharing(
    spec: &ImageDefinitionSpec,
    gallery_sharing: Option<&str>,
) -> Result<(), Error> {
    let wanted = ImageSecurity::of_features(
        spec.features
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str())),
    );
    match gallery_sharing {
        Some(p) if !p.eq_ignore_ascii_case("Private") && wanted.private_only() => {
            Err(Error::InvalidSpec(format!(
                "the gallery is shared ({p}), and Azure keeps {} images in private galleries only: use SecurityType {}Supported",
                wanted.as_str(),
                wanted.as_str()
            )))
        }
        _ => Ok(()),
    }
}

fn os_type(t: OsType) -> &'static str {
    match t {
        OsType::Linux => "Linux",
        OsType::Windows => "Windows",
    }
}

fn os_state(s: OsState) -> &'static str {
    match s {
        OsState::Generalized => "Generalized",
        OsState::Specialized => "Specialized",
    }
}

fn generation(g: HyperVGeneration) -> &'static str {
    match g {
        HyperVGeneration::V1 => "V1",
        HyperVGeneration::V2 => "V2",
    }
}

fn architecture(a: Architecture) -> &'static str {
    match a {
        Architecture::X64 => "x64",
        Architecture::Arm64 => "Arm64",
    }
}

/// The definition body for the spec, and whether `observed` already matches (pure).
pub fn plan(
    spec: &ImageDefinitionSpec,
    location: &str,
    observed: Option<&models::GalleryImage>,
) -> Plan<models::GalleryImage> {
    let recommended = spec
        .recommended
        .as_ref()
        .map(|r| models::RecommendedMachineConfiguration {
            v_cpus: r.v_cpus.as_ref().map(|v| models::ResourceRange {
                min: v.min,
                max: v.max,
            }),
            memory: r.memory.as_ref().map(|m| models::ResourceRange {
                min: m.min,
                max: m.max,
            }),
        });
    let disallowed = (!spec.disallowed_disk_types.is_empty()).then(|| models::Disallowed {
        disk_types: Some(spec.disallowed_disk_types.iter().map(enum_str).collect()),
    });
    // Features cannot change once the definition exists (and Azure adds its own): an existing
    // definition keeps Azure's, a new one gets the spec's.
    let features = match observed {
        Some(o) => o.props().features,
        None => (!spec.features.is_empty()).then(|| {
            spec.features
                .iter()
                .map(|f| models::GalleryImageFeature {
                    name: f.name.clone(),
                    value: f.value.clone(),
                    starts_at_version: None,
                })
                .collect::<Vec<_>>()
        }),
    };
    let properties = models::GalleryImageProperties {
        description: spec.description.clone(),
        eula: spec.eula.clone(),
        privacy_statement_uri: spec.privacy_statement_uri.clone(),
        release_note_uri: spec.release_note_uri.clone(),
        os_type: Some(os_type(spec.os_type).into()),
        os_state: Some(os_state(spec.os_state).into()),
        hyper_v_generation: Some(generation(spec.hyper_v_generation).into()),
        architecture: Some(architecture(spec.architecture).into()),
        end_of_life_date: spec.end_of_life_date.clone(),
        identifier: Some(models::GalleryImageIdentifier {
            publisher: spec.identifier.publisher.clone(),
            offer: spec.identifier.offer.clone(),
            sku: spec.identifier.sku.clone(),
        }),
        recommended: recommended.clone(),
        disallowed: disallowed.clone(),
        purchase_plan: spec
            .purchase_plan
            .as_ref()
            .map(|p| models::ImagePurchasePlan {
                name: p.name.clone(),
                publisher: p.publisher.clone(),
                product: p.product.clone(),
            }),
        features: features.clone(),
        provisioning_state: None,
    };
    let up_to_date = observed.is_some_and(|o| {
        let p = o.props();
        let same = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
        o.location
            .as_deref()
            .is_some_and(|l| same_region(l, location))
            && tags_cover(&spec.options.tags, o.tags.as_ref())
            && same(&properties.description, &p.description)
            && same(&properties.privacy_statement_uri, &p.privacy_statement_uri)
            && same(&properties.release_note_uri, &p.release_note_uri)
            && same_instant(
                properties.end_of_life_date.as_deref(),
                p.end_of_life_date.as_deref(),
            )
            && (recommended.is_none() || recommended == p.recommended)
            && (disallowed.is_none() || disallowed == p.disallowed)
    });
    let body = models::GalleryImage {
        location: Some(location.to_string()),
        tags: Some(merged_tags(
            &spec.options.tags,
            observed.and_then(|o| o.tags.as_ref()),
        )),
        properties: Some(properties),
        ..Default::default()
    };
    Plan { body, up_to_date }
}

/// The immutable properties in which an existing definition differs from the spec (pure).
pub fn immutable_conflicts(
    spec: &ImageDefinitionSpec,
    existing: &models::GalleryImage,
) -> Vec<String> {
    let p = existing.props();
    let mut conflicts = Vec::new();
    let mut check = |name: &str, want: &str, have: Option<&str>| {
        if let Some(have) = have
            && !have.eq_ignore_ascii_case(want)
        {
            conflicts.push(format!("{name} {have} (spec: {want})"));
        }
    };
    check("osType", os_type(spec.os_type), p.os_type.as_deref());
    check("osState", os_state(spec.os_state), p.os_state.as_deref());
    check(
        "hyperVGeneration",
        generation(spec.hyper_v_generation),
        p.hyper_v_generation.as_deref(),
    );
    check(
        "architecture",
        architecture(spec.architecture),
        p.architecture.as_deref(),
    );
    if let Some(id) = &p.identifier {
        let want = format!(
            "{}/{}/{}",
            spec.identifier.publisher, spec.identifier.offer, spec.identifier.sku
        );
        check(
            "identifier",
            &want,
            Some(&format!("{}/{}/{}", id.publisher, id.offer, id.sku)),
        );
    }
    // Only the features the spec lists are compared: one Azure added is not a difference.
    let have = p.features.clone().unwrap_or_default();
    for want in &spec.features {
        match have
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(&want.name))
        {
            Some(h) if h.value.eq_ignore_ascii_case(&want.value) => {}
            Some(h) => conflicts.push(format!(
                "feature {} {} (spec: {})",
                want.name, h.value, want.value
            )),
            None => conflicts.push(format!("no feature {} (spec: {})", want.name, want.value)),
        }
    }
    conflicts
}

/// The highest Ready version of this definition not excluded from latest, from our objects
/// (those the index files under it: this runs at every reconcile of a definition).
fn latest_version(ctx: &Context, def: &ImageDefinition) -> Option<String> {
    let namespace = def.namespace().unwrap_or_default();
    let versions =
        ctx.stores
            .naming::<ImageVersion>(&namespace, ImageDefinition::KIND, &def.name_any());
    super::versions::latest_of(versions.iter().map(|v| &**v), def)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ImageDefinitionSpec {
        serde_json::from_value(serde_json::json!({
            "galleryRef": {"name": "g"}, "osType": "Linux", "osState": "Generalized",
            "identifier": {"publisher": "Contoso", "offer": "Ubuntu", "sku": "22_04-lts"},
            "endOfLifeDate": "2028-01-01T00:00:00Z",
            "features": [{"name": "SecurityType", "value": "TrustedLaunch"}]
        }))
        .unwrap()
    }

    fn echoed(spec: &ImageDefinitionSpec) -> models::GalleryImage {
        let mut image = plan(spec, "eastus", None).body;
        image.location = Some("East US".into());
        let p = image.properties.as_mut().unwrap();
        p.end_of_life_date = Some("2028-01-01T00:00:00+00:00".into());
        p.provisioning_state = Some("Succeeded".into());
        p.description = Some("set in the portal".into());
        image
    }

    #[test]
    fn the_body_has_the_definitions_identity() {
        let body = plan(&spec(), "eastus", None).body;
        let p = body.properties.unwrap();
        assert_eq!(
            (p.os_type.as_deref(), p.os_state.as_deref()),
            (Some("Linux"), Some("Generalized"))
        );
        assert_eq!(
            (p.hyper_v_generation.as_deref(), p.architecture.as_deref()),
            (Some("V2"), Some("x64"))
        );
        assert_eq!(p.identifier.unwrap().sku, "22_04-lts");
    }

    #[test]
    fn arm_echoes_do_not_cause_writes() {
        let s = spec();
        assert!(
            plan(&s, "eastus", Some(&echoed(&s))).up_to_date,
            "region spelling, timestamp format and unmanaged description"
        );
    }

    #[test]
    fn a_changed_end_of_life_needs_a_write() {
        let s = spec();
        let mut o = echoed(&s);
        o.properties.as_mut().unwrap().end_of_life_date = Some("2029-01-01T00:00:00Z".into());
        assert!(!plan(&s, "eastus", Some(&o)).up_to_date);
    }

    #[test]
    fn immutable_differences_are_named() {
        let s = spec();
        let mut o = echoed(&s);
        o.properties.as_mut().unwrap().os_state = Some("Specialized".into());
        assert_eq!(
            immutable_conflicts(&s, &o),
            ["osState Specialized (spec: Generalized)"]
        );
        assert!(immutable_conflicts(&s, &echoed(&s)).is_empty());
    }

    #[test]
    fn a_feature_azure_adds_is_not_drift_and_a_listed_one_that_differs_is_named() {
        let s = spec();
        let mut o = echoed(&s);
        o.properties
            .as_mut()
            .unwrap()
            .features
            .as_mut()
            .unwrap()
            .push(models::GalleryImageFeature {
                name: "IsAcceleratedNetworkSupported".into(),
                value: "True".into(),
                starts_at_version: None,
            });
        assert!(
            plan(&s, "eastus", Some(&o)).up_to_date,
            "an extra feature of Azure's"
        );
        assert!(immutable_conflicts(&s, &o).is_empty());
        assert_eq!(
            plan(&s, "eastus", Some(&o))
                .body
                .properties
                .unwrap()
                .features
                .unwrap()
                .len(),
            2,
            "an update writes Azure's features back as they are"
        );
        let mut other = echoed(&s);
        other.properties.as_mut().unwrap().features = Some(vec![models::GalleryImageFeature {
            name: "SecurityType".into(),
            value: "TrustedLaunchSupported".into(),
            starts_at_version: None,
        }]);
        assert_eq!(
            immutable_conflicts(&s, &other),
            ["feature SecurityType TrustedLaunchSupported (spec: TrustedLaunch)"]
        );
    }

    #[test]
    fn shared_galleries_hold_no_trusted_launch_only_definitions() {
        let s = spec();
        assert!(check_sharing(&s, Some("Groups")).is_err());
        assert!(check_sharing(&s, Some("Private")).is_ok());
        assert!(check_sharing(&s, None).is_ok());
        let mut supported = spec();
        supported.features[0].value = "TrustedLaunchSupported".into();
        assert!(check_sharing(&supported, Some("Community")).is_ok());
    }
}
