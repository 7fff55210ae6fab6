//! ImageVersion: a gallery image version and its replication, region by region.

use kube::ResourceExt;
use serde_json::Value;

use super::{
    Context, Error, Managed, Report, Step,
    comparison::{enum_str, merged_tags, same_instant, tags_cover},
    conditions::Outcome,
    deletion::{self, delete_recorded},
    parts::{self, Busy, Part},
    security::{ImageSecurity, SourceFacts, SourceKind, vm_security_of},
    steps::{self, Plan},
    tenancy::Target,
};
use crate::{
    api::{
        ImageVersion, ImageVersionSpec,
        image_version::{
            RegionReplicationStatus, ReplicationState, ReplicationStatus, TargetRegion,
        },
    },
    arm::{ArmClient, ArmError, ResourceId, models, normalize_region, same_region},
};

const EXPAND: [(&str, &str); 1] = [("$expand", "ReplicationStatus")];

impl Managed for ImageVersion {
    common_accessors!("ImageVersion");

    fn targets(&self) -> Vec<(&'static str, Target)> {
        let definition = self.spec.image_definition_id.clone();
        definition
            .map(|id| ("spec.imageDefinitionId", Target::Resource(id)))
            .into_iter()
            .collect()
    }

    /// The client, the definition, and the version's name in it.
    type Resolved = (ArmClient, Definition, String);

    async fn resolve(&self, ctx: &Context, report: &mut Report) -> Result<Self::Resolved, Error> {
        let version = self.spec.version.clone().unwrap_or_else(|| self.name_any());
        report.set("version", &version);
        let arm = ctx
            .arm_for(&self.namespace().unwrap_or_default(), &self.spec.options)
            .await?;
        let definition = resolve_definition(ctx, self, &arm, report).await?;
        Ok((arm, definition, version))
    }

    fn validate(&self, (_, definition, _): &Self::Resolved) -> Result<(), Error> {
        target_regions(&self.spec, &definition.location).map(drop)
    }

    async fn apply(
        &self,
        ctx: &Context,
        (arm, definition, version): Self::Resolved,
        report: &mut Report,
    ) -> Result<Step, Error> {
        let location = definition.location.clone();
        let regions = target_regions(&self.spec, &location)?;
        ctx.check_regions(
            &arm,
            definition.id.subscription(),
            regions.iter().map(|r| r.name.as_str()),
        )
        .await?;
        let never_created = self
            .status
            .as_ref()
            .is_none_or(|s| s.common.id.is_none() && s.common.pending_operation.is_none());
        let identity = source_identity(self);
        if never_created {
            check_sources(ctx, &arm, &identity, &self.spec, &definition).await?;
        }
        let id = definition.id.child("versions", &version);
        let now = k8s_openapi::jiff::Timestamp::now();
        let plan = |observed: Option<&models::GalleryImageVersion>| {
            check_region_removal(&self.spec, &regions, observed)?;
            check_end_of_life(&self.spec, observed, now)?;
            Ok(plan(&self.spec, &location, &regions, observed))
        };
        let status = |image: Option<&models::GalleryImageVersion>, report: &mut Report| {
            if let Some(image) = image {
                report.observe(&id, image);
                let p = image.props();
                let profile = p.publishing_profile.unwrap_or_default();
                report.set("publishedDate", profile.published_date);
                report.set("endOfLifeDate", profile.end_of_life_date);
                report.set(
                    "blockDeletionBeforeEndOfLife",
                    p.safety_profile
                        .and_then(|s| s.block_deletion_before_end_of_life),
                );
            }
            report.set(
                "replication",
                image.map(|i| replication_status(i, &regions)),
            );
        };
        let settle = |image: Option<&models::GalleryImageVersion>, busy| {
            settle(&id, image.map(|i| replication_status(i, &regions)), busy)
        };
        let owner = steps::owner_of(self);
        let uid = self.uid().unwrap_or_default();
        let ensuring = vec![
            Part::main("image version", &id)
                .settled(plan, status, settle)
                .query(&EXPAND),
        ];
        let ensured = parts::ensure(&arm, report, &owner, &uid, ensuring)
            .await
            .inspect_err(|e| {
                // What ARM refused may be the source as kept.
                if super::sources::invalidated_by(e) {
                    forget_sources(ctx, &identity, &self.spec)
                }
            })?;
        if let Some(step) = ensured {
            return Ok(step);
        }
        Ok(Step::Done(Outcome::ready(format!(
            "image version {} is replicated to {}",
            id.name(),
            regions
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))))
    }

    async fn cleanup(&self, ctx: &Context, report: &mut Report) -> Result<Step, Error> {
        // The VMs naming it, or built from it through their definition's `latest`, went first
        // (`deletion::dependents_first`).
        // Azure refuses to delete before the end of life: wait for it, without asking again.
        if let Some((date, left)) =
            deletion_blocked_until(report, k8s_openapi::jiff::Timestamp::now())
        {
            return Ok(Step::Wait(
                Outcome::progressing(
                    "DeletingBlocked",
                    format!(
                        "Azure keeps this version until its endOfLifeDate {date} (blockDeletionBeforeEndOfLife); it is deleted then, or {}",
                        deletion::ORPHAN_HINT
                    ),
                ),
                left.min(ctx.resync),
            ));
        }
        delete_recorded(ctx, self, report, "image version").await
    }
}

/// When the version's status says Azure blocks its deletion until an end of life still to come:
/// that date and how long until then (pure).
pub fn deletion_blocked_until(
    report: &Report,
    now: k8s_openapi::jiff::Timestamp,
) -> Option<(String, std::time::Duration)> {
    if report.get("blockDeletionBeforeEndOfLife") != Some(&Value::Bool(true)) {
        return None;
    }
    let date = report.get("endOfLifeDate")?.as_str()?;
    let end = date.parse::<k8s_openapi::jiff::Timestamp>().ok()?;
    let left = now.duration_until(end).unsigned_abs();
    (end > now).then(|| (date.to_string(), left))
}

/// Whether the version is done once ARM has written it (pure): replication failed in a region
/// is an error naming it; while it replicates the version is `Replicating` with its progress,
/// even while ARM still reports the write busy; a version ARM is still creating and has not
/// reported replication for reads as `Creating`.
pub fn settle(
    id: &ResourceId,
    replication: Option<ReplicationStatus>,
    busy: Option<Busy>,
) -> Result<Option<Busy>, Error> {
    if let Some(failed) = replication
        .as_ref()
        .filter(|r| r.state == ReplicationState::Failed)
    {
        let regions: Vec<String> = failed
            .regions
            .iter()
            .filter(|r| r.state.eq_ignore_ascii_case("Failed"))
            .map(|r| {
                if r.details.is_empty() {
                    r.region.clone()
                } else {
                    format!("{} ({})", r.region, r.details)
                }
            })
            .collect();
        return Err(Error::Arm(ArmError::OperationFailed {
            code: "ReplicationFailed".into(),
            message: format!(
                "replication of {} failed in {}",
                id.name(),
                regions.join(", ")
            ),
        }));
    }
    let progress = replication.as_ref().map_or(0, |r| r.progress);
    let replicating = |retry_after| {
        Some(Busy::Settling(Step::Wait(
            replicating(id, progress),
            retry_after,
        )))
    };
    Ok(match busy {
        Some(Busy::Arm { creating: true, .. }) if replication.is_none() => busy,
        Some(Busy::Arm { retry_after, .. }) => replicating(retry_after),
        Some(settling) => Some(settling),
        None if replication
            .as_ref()
            .is_some_and(|r| r.state != ReplicationState::Completed) =>
        {
            replicating(steps::BUSY_POLL)
        }
        None => None,
    })
}

fn replicating(id: &ResourceId, progress: i32) -> Outcome {
    Outcome::progressing(
        "Replicating",
        format!("replicating image version {}: {progress}%", id.name()),
    )
}

/// What the version needs to know of its image definition.
pub struct Definition {
    pub id: ResourceId,
    /// Normalised region, where Azure keeps the version.
    pub location: String,
    pub os_type: String,
    pub os_state: String,
    /// `V1` or `V2`.
    pub generation: String,
    /// Its effective `SecurityType`, Azure's default included.
    pub security: ImageSecurity,
}

/// The image definition. Creating the version needs the definition Ready; an existing version
/// only needs its ID (design.md §5.2).
async fn resolve_definition(
    ctx: &Context,
    version: &ImageVersion,
    arm: &ArmClient,
    report: &mut Report,
) -> Result<Definition, Error> {
    if let Some(id) = &version.spec.image_definition_id {
        let id = ResourceId::parse(id)?;
        let definition = arm.get::<models::GalleryImage>(&id).await?.ok_or_else(|| {
            Error::waiting_for_dependency(format!(
                "image definition {id} named by spec.imageDefinitionId does not exist (or this identity cannot see it)"
            ))
        })?;
        let p = definition.props();
        return Ok(Definition {
            location: normalize_region(definition.location.as_deref().unwrap_or_default()),
            os_type: p.os_type.clone().unwrap_or_default(),
            os_state: p.os_state.clone().unwrap_or_default(),
            generation: p.hyper_v_generation.clone().unwrap_or_else(|| "V2".into()),
            security: ImageSecurity::of_definition(&definition),
            id,
        });
    }
    let definition =
        super::parents::resolve_parent::<_, crate::api::ImageDefinition>(ctx, version, report)
            .await?
            .expect("the schema requires a definition");
    let name = definition.object.name_any();
    let object = &definition.object;
    let status = object.status.as_ref();
    let Some(location) = status.and_then(|s| s.location.clone()) else {
        return Err(Error::waiting_for_parent(format!(
            "waiting for ImageDefinition {name} to be Ready"
        )));
    };
    // Azure's own view of its security type (its defaults included) once it has read it.
    let security = status
        .and_then(|s| s.security_type.as_deref())
        .and_then(ImageSecurity::parse)
        .unwrap_or_else(|| {
            ImageSecurity::of_features(
                object
                    .spec
                    .features
                    .iter()
                    .map(|f| (f.name.as_str(), f.value.as_str())),
            )
        });
    Ok(Definition {
        id: definition.id,
        location,
        os_type: enum_str(&object.spec.os_type),
        os_state: enum_str(&object.spec.os_state),
        generation: enum_str(&object.spec.hyper_v_generation),
        security,
    })
}

/// Whose reads of sources a version shares: the versions of one namespace with the same
/// `credentialRef` act as one identity.
fn source_identity(version: &ImageVersion) -> String {
    let secret = version.spec.options.credential_ref.as_ref();
    format!(
        "{}/{}",
        version.namespace().unwrap_or_default(),
        secret.map_or("", |s| s.name.as_str())
    )
}

/// The ARM IDs of the sources the spec names, the OS source first.
fn source_ids(spec: &ImageVersionSpec) -> Vec<&String> {
    let source = &spec.source;
    let mut ids: Vec<&String> = [
        &source.managed_image_id,
        &source.virtual_machine_id,
        &source.image_version_id,
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(s) = &source.snapshots {
        ids.push(&s.os_disk_snapshot_id);
        ids.extend(s.data_disk_snapshots.iter().map(|d| &d.snapshot_id));
    }
    ids
}

/// After a failure, what is kept of the version's sources (and a gallery version's
/// definition) may be what was wrong: the next attempt reads them again.
fn forget_sources(ctx: &Context, identity: &str, spec: &ImageVersionSpec) {
    for id in source_ids(spec)
        .into_iter()
        .filter_map(|raw| ResourceId::parse(raw).ok())
    {
        if id.is_type("Microsoft.Compute/galleries/images/versions")
            && let Some(parent) = id.parent()
        {
            ctx.sources.forget(identity, &parent);
        }
        ctx.sources.forget(identity, &id);
    }
}

/// Before the first write: every source the spec names exists and suits the definition (its
/// OS, and what its security type takes), so a typo, a Windows image under a Linux definition
/// or a managed image under a Trusted Launch one is an `InvalidSpec` naming it, not an ARM
/// failure after the fact. Runs once per version, not per resync; the reads are shared with
/// the versions of the same sources (`ctx.sources`).
async fn check_sources(
    ctx: &Context,
    arm: &ArmClient,
    identity: &str,
    spec: &ImageVersionSpec,
    definition: &Definition,
) -> Result<(), Error> {
    check_source_bodies(ctx, arm, identity, spec, definition)
        .await
        .inspect_err(|e| {
            if super::sources::invalidated_by(e) {
                forget_sources(ctx, identity, spec)
            }
        })
}

async fn check_source_bodies(
    ctx: &Context,
    arm: &ArmClient,
    identity: &str,
    spec: &ImageVersionSpec,
    definition: &Definition,
) -> Result<(), Error> {
    for (index, raw) in source_ids(spec).into_iter().enumerate() {
        let id = ResourceId::parse(raw)?;
        let Some(body) = ctx.sources.read(arm, identity, &id).await? else {
            return Err(Error::waiting_for_dependency(format!(
                "the source {raw} does not exist yet (or this identity cannot see it)"
            )));
        };
        // Data disk snapshots carry no OS; only the first ID is the OS source.
        if index == 0 {
            source_fits(&id, &body, &definition.os_type, &definition.os_state)?;
            let from_definition = match id.parent() {
                Some(parent) if id.is_type("Microsoft.Compute/galleries/images/versions") => {
                    match ctx.sources.read(arm, identity, &parent).await? {
                        Some(body) => Some(
                            serde_json::from_value::<models::GalleryImage>((*body).clone())
                                .map_err(|e| {
                                    ArmError::Protocol(format!(
                                        "could not parse the image definition {parent}: {e}"
                                    ))
                                })?,
                        ),
                        None => None,
                    }
                }
                _ => None,
            };
            let facts = source_facts(&id, &body, from_definition.as_ref());
            definition
                .security
                .accepts(&definition.generation, &facts)
                .map_err(|why| {
                    Error::InvalidSpec(format!(
                        "the source {} cannot become a version of this {} image definition: {why}",
                        id.name(),
                        definition.security.as_str()
                    ))
                })?;
        }
    }
    Ok(())
}

/// A source's kind, generation and security type from its ARM body (pure). A gallery version's
/// security comes from its definition, `definition`.
pub fn source_facts(
    id: &ResourceId,
    body: &Value,
    definition: Option<&models::GalleryImage>,
) -> SourceFacts {
    let p = &body["properties"];
    let kind = if id.is_type("Microsoft.Compute/images") {
        SourceKind::ManagedImage
    } else if id.is_type("Microsoft.Compute/virtualMachines") {
        SourceKind::VirtualMachine
    } else if id.is_type("Microsoft.Compute/galleries/images/versions") {
        SourceKind::GalleryVersion
    } else {
        SourceKind::Disk
    };
    let generation = match kind {
        // A definition that names no generation is generation 1.
        SourceKind::GalleryVersion => {
            definition.map(|d| d.props().hyper_v_generation.unwrap_or_else(|| "V1".into()))
        }
        // A VM's generation is its OS disk's, which its body does not carry.
        SourceKind::VirtualMachine => None,
        _ => p["hyperVGeneration"].as_str().map(str::to_string),
    };
    SourceFacts {
        kind,
        generation,
        vm_security: vm_security_of(p["securityProfile"]["securityType"].as_str()),
        definition: definition.map(ImageSecurity::of_definition),
    }
}

/// Whether an OS source suits a definition of `os_type`/`os_state` (pure). Managed images
/// and VMs report their OS disk's type (and images their state); snapshots their OS type.
pub fn source_fits(
    id: &ResourceId,
    body: &Value,
    os_type: &str,
    os_state: &str,
) -> Result<(), Error> {
    let p = &body["properties"];
    let os_disk = &p["storageProfile"]["osDisk"];
    let have_type = os_disk["osType"].as_str().or(p["osType"].as_str());
    if let Some(have) = have_type.filter(|t| !t.eq_ignore_ascii_case(os_type)) {
        return Err(Error::InvalidSpec(format!(
            "the source {} is a {have} image, but the image definition's osType is {os_type}",
            id.name()
        )));
    }
    let have_state = os_disk["osState"].as_str();
    if let Some(have) = have_state.filter(|s| !s.eq_ignore_ascii_case(os_state)) {
        return Err(Error::InvalidSpec(format!(
            "the source {} is {have}, but the image definition's osState is {os_state}",
            id.name()
        )));
    }
    Ok(())
}

/// The target regions, defaulting to the definition's region, which they must include (pure).
pub fn target_regions(spec: &ImageVersionSpec, location: &str) -> Result<Vec<TargetRegion>, Error> {
    if spec.target_regions.is_empty() {
        return Ok(vec![TargetRegion {
            name: normalize_region(location),
            replica_count: None,
            storage_account_type: None,
            exclude_from_latest: None,
        }]);
    }
    if !spec
        .target_regions
        .iter()
        .any(|r| same_region(&r.name, location))
    {
        return Err(Error::InvalidSpec(format!(
            "targetRegions must include the image definition's region {location}, where Azure keeps the version"
        )));
    }
    Ok(spec
        .target_regions
        .iter()
        .map(|r| TargetRegion {
            name: normalize_region(&r.name),
            ..r.clone()
        })
        .collect())
}

/// Azure refuses to drop a replicated region unless the safety profile allows it; say so
/// before writing, naming the regions and the field to set (pure).
pub fn check_region_removal(
    spec: &ImageVersionSpec,
    regions: &[TargetRegion],
    observed: Option<&models::GalleryImageVersion>,
) -> Result<(), Error> {
    if spec.allow_deletion_of_replicated_locations == Some(true) {
        return Ok(());
    }
    let removed: Vec<String> = observed
        .and_then(|o| o.props().publishing_profile)
        .and_then(|p| p.target_regions)
        .unwrap_or_default()
        .into_iter()
        .filter(|have| {
            !regions
                .iter()
                .any(|want| same_region(&want.name, &have.name))
        })
        .map(|have| normalize_region(&have.name))
        .collect();
    if removed.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidSpec(format!(
        "removing replicated region(s) {} needs spec.allowDeletionOfReplicatedLocations: true",
        removed.join(", ")
    )))
}

/// Azure refuses an end of life in the past when it is set or changed: say so before writing,
/// naming it (pure; an unchanged date that has passed since is no reason to refuse).
pub fn check_end_of_life(
    spec: &ImageVersionSpec,
    observed: Option<&models::GalleryImageVersion>,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<(), Error> {
    let Some(want) = spec.end_of_life_date.as_deref() else {
        return Ok(());
    };
    let have = observed.and_then(|o| o.props().publishing_profile?.end_of_life_date);
    if have.is_some() && same_instant(Some(want), have.as_deref()) {
        return Ok(());
    }
    match want.parse::<k8s_openapi::jiff::Timestamp>() {
        Ok(t) if t <= now => Err(Error::InvalidSpec(format!(
            "endOfLifeDate {want} is in the past: Azure needs a future date"
        ))),
        _ => Ok(()),
    }
}

/// The version body for the spec, and whether `observed` already matches (pure). Only what
/// the spec sets is compared; ARM's defaults (one replica, Standard_LRS...) never cause writes.
pub fn plan(
    spec: &ImageVersionSpec,
    location: &str,
    regions: &[TargetRegion],
    observed: Option<&models::GalleryImageVersion>,
) -> Plan<models::GalleryImageVersion> {
    let storage = spec.storage_account_type.as_ref().map(enum_str);
    let body_regions: Vec<models::TargetRegion> = regions
        .iter()
        .map(|r| models::TargetRegion {
            name: r.name.clone(),
            regional_replica_count: r.replica_count.or(spec.replica_count),
            storage_account_type: r
                .storage_account_type
                .as_ref()
                .map(enum_str)
                .or_else(|| storage.clone()),
            exclude_from_latest: r.exclude_from_latest,
        })
        .collect();
    let source = &spec.source;
    let storage_profile = match &source.snapshots {
        Some(s) => models::StorageProfile {
            source: None,
            os_disk_image: Some(models::DiskImage {
                source: Some(models::SubResource {
                    id: s.os_disk_snapshot_id.clone(),
                }),
                host_caching: None,
            }),
            data_disk_images: (!s.data_disk_snapshots.is_empty()).then(|| {
                s.data_disk_snapshots
                    .iter()
                    .map(|d| models::DataDiskImage {
                        lun: d.lun,
                        source: Some(models::SubResource {
                            id: d.snapshot_id.clone(),
                        }),
                        host_caching: None,
                    })
                    .collect()
            }),
        },
        None => models::StorageProfile {
            source: Some(models::VersionSource {
                id: source
                    .managed_image_id
                    .clone()
                    .or_else(|| source.virtual_machine_id.clone())
                    .or_else(|| source.image_version_id.clone()),
                virtual_machine_id: None,
            }),
            ..Default::default()
        },
    };
    let observed_profile = observed.and_then(|o| o.props().publishing_profile);
    // Azure cannot change the strategy: an existing version keeps the one it has (its default
    // one too) unless the spec names one.
    let strategy = spec
        .storage_account_strategy
        .as_ref()
        .map(enum_str)
        .or_else(|| observed_profile.as_ref()?.storage_account_strategy.clone());
    let publishing = models::PublishingProfile {
        target_regions: Some(body_regions.clone()),
        replica_count: spec.replica_count,
        exclude_from_latest: spec.exclude_from_latest,
        published_date: None,
        end_of_life_date: spec.end_of_life_date.clone(),
        storage_account_type: storage.clone(),
        storage_account_strategy: strategy,
        replication_mode: spec.replication_mode.as_ref().map(enum_str),
    };
    let up_to_date = observed.is_some_and(|o| {
        let p = o.props();
        let have = p.publishing_profile.clone().unwrap_or_default();
        let have_regions = have.target_regions.clone().unwrap_or_default();
        let same = |want: &Option<String>, have: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| have.as_ref().is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        let regions_match = have_regions.len() == body_regions.len()
            && body_regions.iter().all(|want| {
                have_regions.iter().any(|h| {
                    same_region(&h.name, &want.name)
                        && want
                            .regional_replica_count
                            .is_none_or(|c| h.regional_replica_count == Some(c))
                        && same(&want.storage_account_type, &h.storage_account_type)
                        && want
                            .exclude_from_latest
                            .is_none_or(|e| h.exclude_from_latest.unwrap_or(false) == e)
                })
            });
        regions_match
            && tags_cover(&spec.options.tags, o.tags.as_ref())
            && spec
                .replica_count
                .is_none_or(|c| have.replica_count == Some(c))
            && spec
                .exclude_from_latest
                .is_none_or(|e| have.exclude_from_latest.unwrap_or(false) == e)
            && same(&storage, &have.storage_account_type)
            && same_instant(
                spec.end_of_life_date.as_deref(),
                have.end_of_life_date.as_deref(),
            )
            && spec.allow_deletion_of_replicated_locations.is_none_or(|a| {
                p.safety_profile
                    .as_ref()
                    .and_then(|s| s.allow_deletion_of_replicated_locations)
                    .unwrap_or(false)
                    == a
            })
            && p.safety_profile
                .as_ref()
                .and_then(|s| s.block_deletion_before_end_of_life)
                .unwrap_or(false)
                == spec.block_deletion_before_end_of_life
            && spec.storage_account_strategy.as_ref().is_none_or(|want| {
                have.storage_account_strategy
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&enum_str(want)))
            })
    });
    let body = models::GalleryImageVersion {
        location: Some(normalize_region(location)),
        tags: Some(merged_tags(
            &spec.options.tags,
            observed.and_then(|o| o.tags.as_ref()),
        )),
        properties: Some(models::GalleryImageVersionProperties {
            publishing_profile: Some(publishing),
            storage_profile: Some(storage_profile),
            // The block is always sent, so the api-version's default never decides it.
            safety_profile: Some(models::SafetyProfile {
                allow_deletion_of_replicated_locations: spec.allow_deletion_of_replicated_locations,
                block_deletion_before_end_of_life: Some(spec.block_deletion_before_end_of_life),
                reported_for_policy_violation: None,
            }),
            provisioning_state: None,
            replication_status: None,
        }),
        ..Default::default()
    };
    Plan { body, up_to_date }
}

/// Replication progress for status, one entry per target region in spec order (pure).
/// Regions ARM does not report yet count as 0 %.
pub fn replication_status(
    image: &models::GalleryImageVersion,
    regions: &[TargetRegion],
) -> ReplicationStatus {
    let p = image.props();
    let reported = p.replication_status.clone().unwrap_or_default();
    let summary = reported.summary.unwrap_or_default();
    let entries: Vec<RegionReplicationStatus> = regions
        .iter()
        .map(|want| {
            let found = summary.iter().find(|s| {
                s.region
                    .as_deref()
                    .is_some_and(|r| same_region(r, &want.name))
            });
            RegionReplicationStatus {
                region: normalize_region(&want.name),
                state: found
                    .and_then(|s| s.state.clone())
                    .unwrap_or_else(|| "Unknown".into()),
                progress: found.and_then(|s| s.progress).unwrap_or(0).clamp(0, 100),
                details: found.and_then(|s| s.details.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let progress = if entries.is_empty() {
        0
    } else {
        entries.iter().map(|e| e.progress).sum::<i32>() / entries.len() as i32
    };
    let succeeded = p
        .provisioning_state
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("Succeeded"));
    let state = match reported.aggregated_state.as_deref() {
        Some(s) if s.eq_ignore_ascii_case("Failed") => ReplicationState::Failed,
        _ if entries
            .iter()
            .any(|e| e.state.eq_ignore_ascii_case("Failed")) =>
        {
            ReplicationState::Failed
        }
        Some(s) if s.eq_ignore_ascii_case("Completed") && succeeded => ReplicationState::Completed,
        Some(s) if s.eq_ignore_ascii_case("Completed") || s.eq_ignore_ascii_case("InProgress") => {
            ReplicationState::InProgress
        }
        _ if succeeded && p.replication_status.is_none() => ReplicationState::Completed,
        _ => ReplicationState::Unknown,
    };
    let progress = if state == ReplicationState::Completed {
        100
    } else {
        progress
    };
    ReplicationStatus {
        state,
        progress,
        regions: entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_done_only_once_replicated_everywhere() {
        let id = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0",
        )
        .unwrap();
        let status = |state, progress, regions: Vec<(&str, &str, &str)>| ReplicationStatus {
            state,
            progress,
            regions: regions
                .into_iter()
                .map(|(region, state, details)| RegionReplicationStatus {
                    region: region.into(),
                    state: state.into(),
                    progress: 0,
                    details: details.into(),
                })
                .collect(),
        };
        let arm_busy = |creating| {
            Some(Busy::Arm {
                retry_after: std::time::Duration::from_secs(7),
                creating,
            })
        };
        let reason = |settled: Result<Option<Busy>, Error>| match settled.unwrap() {
            Some(Busy::Settling(Step::Wait(outcome, after))) => {
                format!(
                    "{} {} {}s",
                    outcome.reason,
                    outcome.message,
                    after.as_secs()
                )
            }
            Some(Busy::Arm { creating, .. }) => format!("Arm creating={creating}"),
            other => format!("{other:?}"),
        };

        // ARM creating, nothing replicated yet: Creating, as ARM says.
        assert_eq!(
            reason(settle(&id, None, arm_busy(true))),
            "Arm creating=true"
        );
        // ARM still busy, replication under way: Replicating with progress, at ARM's pace.
        let half = status(ReplicationState::InProgress, 50, vec![]);
        assert_eq!(
            reason(settle(&id, Some(half.clone()), arm_busy(false))),
            "Replicating replicating image version 1.0.0: 50% 7s"
        );
        // ARM done with the write, replication not: still Replicating.
        assert!(reason(settle(&id, Some(half), None)).starts_with("Replicating"));
        // Replicated everywhere: done.
        let done = status(ReplicationState::Completed, 100, vec![]);
        assert!(settle(&id, Some(done), None).unwrap().is_none());
        // Failed in a region: an error naming it and why, busy or not.
        let failed = status(
            ReplicationState::Failed,
            40,
            vec![
                ("eastus", "Completed", ""),
                ("westeurope", "Failed", "quota"),
            ],
        );
        for busy in [None, arm_busy(false)] {
            match settle(&id, Some(failed.clone()), busy) {
                Err(Error::Arm(ArmError::OperationFailed { code, message })) => {
                    assert_eq!(code, "ReplicationFailed");
                    assert_eq!(message, "replication of 1.0.0 failed in westeurope (quota)");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    fn spec(json: serde_json::Value) -> ImageVersionSpec {
        let mut base = serde_json::json!({
            "imageDefinitionRef": {"name": "ubuntu"},
            "source": {"managedImageId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/golden"}
        });
        base.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    /// What ARM returns for `body`: display-name regions, its defaults filled in.
    fn echo(
        body: &models::GalleryImageVersion,
        aggregated: &str,
        summary: serde_json::Value,
    ) -> models::GalleryImageVersion {
        let mut image = body.clone();
        image.location = Some("East US".into());
        let p = image.properties.as_mut().unwrap();
        p.provisioning_state = Some("Succeeded".into());
        let pp = p.publishing_profile.as_mut().unwrap();
        pp.published_date = Some("2026-11-23T00:00:00Z".into());
        for r in pp.target_regions.as_mut().unwrap() {
            r.name = if r.name == "eastus" {
                "East US".into()
            } else {
                "West Europe".into()
            };
            r.regional_replica_count.get_or_insert(1);
            r.storage_account_type.get_or_insert("Standard_LRS".into());
            r.exclude_from_latest.get_or_insert(false);
        }
        pp.replica_count.get_or_insert(1);
        pp.storage_account_type.get_or_insert("Standard_LRS".into());
        p.replication_status = serde_json::from_value(
            serde_json::json!({"aggregatedState": aggregated, "summary": summary}),
        )
        .unwrap();
        image
    }

    #[test]
    fn regions_default_to_the_definitions_and_must_include_it() {
        let s = spec(serde_json::json!({}));
        assert_eq!(target_regions(&s, "East US").unwrap()[0].name, "eastus");
        let s = spec(serde_json::json!({"targetRegions": [{"name": "westeurope"}]}));
        assert!(
            matches!(target_regions(&s, "eastus"), Err(Error::InvalidSpec(m)) if m.contains("eastus"))
        );
    }

    #[test]
    fn a_source_must_match_the_definitions_os_type_and_state() {
        let id = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/golden",
        )
        .unwrap();
        let image = serde_json::json!({"properties": {"storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized"}}}});
        assert!(source_fits(&id, &image, "Linux", "Generalized").is_ok());
        assert!(matches!(
            source_fits(&id, &image, "Windows", "Generalized"),
            Err(Error::InvalidSpec(m)) if m.contains("golden") && m.contains("Windows")
        ));
        assert!(matches!(
            source_fits(&id, &image, "linux", "Specialized"),
            Err(Error::InvalidSpec(m)) if m.contains("Specialized")
        ));
        let snapshot = serde_json::json!({"properties": {"osType": "Linux"}});
        assert!(source_fits(&id, &snapshot, "Linux", "Specialized").is_ok());
        assert!(source_fits(&id, &snapshot, "Windows", "Specialized").is_err());
    }

    #[test]
    fn removing_a_replicated_region_needs_the_safety_profile_to_allow_it() {
        let both = spec(
            serde_json::json!({"targetRegions": [{"name": "eastus"}, {"name": "westeurope"}]}),
        );
        let regions = target_regions(&both, "eastus").unwrap();
        let observed = echo(
            &plan(&both, "eastus", &regions, None).body,
            "Completed",
            serde_json::json!([]),
        );
        let one = spec(serde_json::json!({"targetRegions": [{"name": "East US"}]}));
        let fewer = target_regions(&one, "eastus").unwrap();
        assert!(check_region_removal(&both, &regions, Some(&observed)).is_ok());
        assert!(check_region_removal(&one, &fewer, None).is_ok());
        assert!(matches!(
            check_region_removal(&one, &fewer, Some(&observed)),
            Err(Error::InvalidSpec(m)) if m.contains("westeurope") && m.contains("allowDeletionOfReplicatedLocations")
        ));
        let allowed = spec(
            serde_json::json!({"targetRegions": [{"name": "eastus"}], "allowDeletionOfReplicatedLocations": true}),
        );
        assert!(check_region_removal(&allowed, &fewer, Some(&observed)).is_ok());
    }

    #[test]
    fn the_body_sends_only_what_the_spec_sets() {
        let s = spec(
            serde_json::json!({"targetRegions": [{"name": "East US"}, {"name": "westeurope", "replicaCount": 2, "storageAccountType": "Standard_ZRS"}]}),
        );
        let regions = target_regions(&s, "eastus").unwrap();
        let body = plan(&s, "eastus", &regions, None).body;
        let pp = body
            .properties
            .as_ref()
            .unwrap()
            .publishing_profile
            .clone()
            .unwrap();
        let r = pp.target_regions.unwrap();
        assert_eq!(
            (r[0].name.as_str(), r[0].regional_replica_count),
            ("eastus", None)
        );
        assert_eq!(
            (
                r[1].regional_replica_count,
                r[1].storage_account_type.as_deref()
            ),
            (Some(2), Some("Standard_ZRS"))
        );
        assert_eq!(pp.replica_count, None);
        let source = body
            .properties
            .unwrap()
            .storage_profile
            .unwrap()
            .source
            .unwrap();
        assert!(source.id.unwrap().ends_with("/images/golden"));
    }

    #[test]
    fn arm_defaults_and_display_names_are_up_to_date() {
        let s = spec(
            serde_json::json!({"targetRegions": [{"name": "eastus"}, {"name": "westeurope", "replicaCount": 2}]}),
        );
        let regions = target_regions(&s, "eastus").unwrap();
        let observed = echo(
            &plan(&s, "eastus", &regions, None).body,
            "Completed",
            serde_json::json!([]),
        );
        assert!(plan(&s, "eastus", &regions, Some(&observed)).up_to_date);
    }

    #[test]
    fn added_removed_or_changed_regions_need_a_write() {
        let s = spec(
            serde_json::json!({"targetRegions": [{"name": "eastus"}, {"name": "westeurope", "replicaCount": 2}]}),
        );
        let regions = target_regions(&s, "eastus").unwrap();
        let observed = echo(
            &plan(&s, "eastus", &regions, None).body,
            "Completed",
            serde_json::json!([]),
        );
        for changed in [
            serde_json::json!({"targetRegions": [{"name": "eastus"}]}),
            serde_json::json!({"targetRegions": [{"name": "eastus"}, {"name": "westeurope", "replicaCount": 3}]}),
            serde_json::json!({"targetRegions": [{"name": "eastus"}, {"name": "westeurope", "replicaCount": 2}, {"name": "westus2"}]}),
            serde_json::json!({"targetRegions": [{"name": "eastus", "excludeFromLatest": true}, {"name": "westeurope", "replicaCount": 2}]}),
        ] {
            let s2 = spec(changed.clone());
            let regions = target_regions(&s2, "eastus").unwrap();
            assert!(
                !plan(&s2, "eastus", &regions, Some(&observed)).up_to_date,
                "{changed}"
            );
        }
    }

    #[test]
    fn replication_is_reported_per_region_and_overall() {
        let s = spec(
            serde_json::json!({"targetRegions": [{"name": "eastus"}, {"name": "westeurope"}]}),
        );
        let regions = target_regions(&s, "eastus").unwrap();
        let mut observed = echo(
            &plan(&s, "eastus", &regions, None).body,
            "InProgress",
            serde_json::json!([{"region": "East US", "state": "Completed", "progress": 100}, {"region": "West Europe", "state": "Replicating", "progress": 26}]),
        );
        observed.properties.as_mut().unwrap().provisioning_state = Some("Creating".into());
        let status = replication_status(&observed, &regions);
        assert_eq!(status.state, ReplicationState::InProgress);
        assert_eq!(status.progress, 63);
        assert_eq!(status.regions[1].region, "westeurope");
        assert_eq!(
            (status.regions[1].state.as_str(), status.regions[1].progress),
            ("Replicating", 26)
        );
    }

    #[test]
    fn a_failed_region_fails_the_replication() {
        let s = spec(
            serde_json::json!({"targetRegions": [{"name": "eastus"}, {"name": "westeurope"}]}),
        );
        let regions = target_regions(&s, "eastus").unwrap();
        let observed = echo(
            &plan(&s, "eastus", &regions, None).body,
            "InProgress",
            serde_json::json!([{"region": "West Europe", "state": "Failed", "progress": 10, "details": "disk copy failed"}]),
        );
        let status = replication_status(&observed, &regions);
        assert_eq!(status.state, ReplicationState::Failed);
        assert_eq!(status.regions[1].details, "disk copy failed");
    }

    #[test]
    fn completed_means_every_region_at_100() {
        let s = spec(serde_json::json!({}));
        let regions = target_regions(&s, "eastus").unwrap();
        let observed = echo(
            &plan(&s, "eastus", &regions, None).body,
            "Completed",
            serde_json::json!([{"region": "East US", "state": "Completed", "progress": 100}]),
        );
        let status = replication_status(&observed, &regions);
        assert_eq!(
            (status.state, status.progress),
            (ReplicationState::Completed, 100)
        );
    }

    #[test]
    fn the_deletion_block_is_always_sent_and_compared() {
        let s = spec(serde_json::json!({}));
        let body = plan(&s, "eastus", &target_regions(&s, "eastus").unwrap(), None).body;
        let safety = body
            .properties
            .as_ref()
            .unwrap()
            .safety_profile
            .clone()
            .unwrap();
        assert_eq!(
            safety.block_deletion_before_end_of_life,
            Some(false),
            "sent even when false"
        );
        let mut blocked = echo(&body, "Completed", serde_json::json!([]));
        blocked
            .properties
            .as_mut()
            .unwrap()
            .safety_profile
            .as_mut()
            .unwrap()
            .block_deletion_before_end_of_life = Some(true);
        assert!(
            !plan(
                &s,
                "eastus",
                &target_regions(&s, "eastus").unwrap(),
                Some(&blocked)
            )
            .up_to_date
        );
    }

    #[test]
    fn a_strategy_azure_chose_is_kept_and_one_asked_for_is_compared() {
        let s = spec(serde_json::json!({}));
        let regions = target_regions(&s, "eastus").unwrap();
        let mut existing = echo(
            &plan(&s, "eastus", &regions, None).body,
            "Completed",
            serde_json::json!([]),
        );
        let pp = existing
            .properties
            .as_mut()
            .unwrap()
            .publishing_profile
            .as_mut()
            .unwrap();
        pp.storage_account_type = None;
        pp.storage_account_strategy = Some("PreferStandard_ZRS".into());
        let p = plan(&s, "eastus", &regions, Some(&existing));
        assert!(p.up_to_date, "Azure's default strategy is no drift");
        assert_eq!(
            p.body
                .properties
                .unwrap()
                .publishing_profile
                .unwrap()
                .storage_account_strategy
                .as_deref(),
            Some("PreferStandard_ZRS"),
            "written back as it is"
        );
        let lrs = spec(serde_json::json!({"storageAccountStrategy": "DefaultStandard_LRS"}));
        assert!(!plan(&lrs, "eastus", &regions, Some(&existing)).up_to_date);
    }

    #[test]
    fn an_end_of_life_in_the_past_is_refused_only_when_set_or_changed() {
        let now: k8s_openapi::jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let past = spec(serde_json::json!({"endOfLifeDate": "2026-01-01T00:00:00Z"}));
        let err = check_end_of_life(&past, None, now).unwrap_err();
        assert!(err.to_string().contains("2026-01-01"), "{err}");
        let regions = target_regions(&past, "eastus").unwrap();
        let existing = echo(
            &plan(&past, "eastus", &regions, None).body,
            "Completed",
            serde_json::json!([]),
        );
        assert!(
            check_end_of_life(&past, Some(&existing), now).is_ok(),
            "unchanged since it passed"
        );
        let future = spec(serde_json::json!({"endOfLifeDate": "2030-01-01T00:00:00Z"}));
        assert!(check_end_of_life(&future, None, now).is_ok());
    }

    #[test]
    fn deletion_waits_for_a_blocking_end_of_life_still_to_come() {
        let now: k8s_openapi::jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let status = |block: bool, date: &str| {
            Report::new(Some(
                &serde_json::json!({"blockDeletionBeforeEndOfLife": block, "endOfLifeDate": date}),
            ))
        };
        let (date, left) =
            deletion_blocked_until(&status(true, "2026-12-02T00:00:00Z"), now).unwrap();
        assert_eq!(date, "2026-12-02T00:00:00Z");
        assert_eq!(left, std::time::Duration::from_secs(86_400));
        assert!(
            deletion_blocked_until(&status(true, "2026-11-30T00:00:00Z"), now).is_none(),
            "passed"
        );
        assert!(
            deletion_blocked_until(&status(false, "2026-12-02T00:00:00Z"), now).is_none(),
            "not blocked"
        );
    }

    #[test]
    fn sources_say_what_they_are_and_what_security_they_carry() {
        let id = |t: &str| {
            ResourceId::parse(&format!(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/{t}"
            ))
            .unwrap()
        };
        let disk = source_facts(
            &id("snapshots/os"),
            &serde_json::json!({"properties": {"hyperVGeneration": "V2", "securityProfile": {"securityType": "TrustedLaunch"}}}),
            None,
        );
        assert_eq!(disk.kind, SourceKind::Disk);
        assert_eq!(disk.generation.as_deref(), Some("V2"));
        assert_eq!(
            disk.vm_security,
            crate::api::virtual_machine::VmSecurityType::TrustedLaunch
        );
        let image = source_facts(
            &id("images/golden"),
            &serde_json::json!({"properties": {}}),
            None,
        );
        assert_eq!(
            (image.kind, image.generation),
            (SourceKind::ManagedImage, None)
        );
        let definition: models::GalleryImage = serde_json::from_value(serde_json::json!({
            "properties": {"hyperVGeneration": "V2", "features": [{"name": "SecurityType", "value": "TrustedLaunch"}]}
        }))
        .unwrap();
        let version = source_facts(
            &id("galleries/g/images/i/versions/1.0.0"),
            &serde_json::json!({}),
            Some(&definition),
        );
        assert_eq!(version.definition, Some(ImageSecurity::TrustedLaunch));
        assert_eq!(version.generation.as_deref(), Some("V2"));
    }
}
