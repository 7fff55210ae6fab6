//! Security types (azure-today.md §A): what each image definition `SecurityType` lets VMs and
//! version sources be, the sizes that cannot run Trusted Launch or Confidential VMs, and the
//! VM-side checks. Pure functions over request JSON, so a scale-set resource can reuse
//! [`check_vm`] with its `virtualMachineProfile`.

use serde_json::{Value, json};

use crate::sim::arm::errors::ArmError;

/// An image definition's `SecurityType` feature (Learn: shared-image-galleries, trusted-launch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionType {
    Standard,
    TrustedLaunch,
    TrustedLaunchSupported,
    ConfidentialVm,
    ConfidentialVmSupported,
    TrustedLaunchAndConfidentialVmSupported,
}

/// What a VM asks for in `securityProfile.securityType` (none means Standard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmType {
    Standard,
    TrustedLaunch,
    ConfidentialVm,
}

const DEFINITION_TYPES: &[(&str, DefinitionType)] = &[
    ("Standard", DefinitionType::Standard),
    ("TrustedLaunch", DefinitionType::TrustedLaunch),
    (
        "TrustedLaunchSupported",
        DefinitionType::TrustedLaunchSupported,
    ),
    ("ConfidentialVM", DefinitionType::ConfidentialVm),
    (
        "ConfidentialVMSupported",
        DefinitionType::ConfidentialVmSupported,
    ),
    (
        "TrustedLaunchAndConfidentialVmSupported",
        DefinitionType::TrustedLaunchAndConfidentialVmSupported,
    ),
];

impl DefinitionType {
    pub fn parse(s: &str) -> Option<Self> {
        DEFINITION_TYPES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, t)| *t)
    }

    pub fn as_str(self) -> &'static str {
        DEFINITION_TYPES
            .iter()
            .find(|(_, t)| *t == self)
            .map(|(n, _)| *n)
            .expect("every type is listed")
    }

    /// The VM security type every VM from this definition must have.
    pub fn required_vm(self) -> Option<VmType> {
        match self {
            Self::TrustedLaunch => Some(VmType::TrustedLaunch),
            Self::ConfidentialVm => Some(VmType::ConfidentialVm),
            _ => None,
        }
    }

    /// Which VMs the definition can create (azure-today §A.2).
    pub fn allows_vm(self, vm: VmType) -> bool {
        use VmType::*;
        match self {
            Self::Standard => vm == Standard,
            Self::TrustedLaunch => vm == TrustedLaunch,
            Self::TrustedLaunchSupported => vm != ConfidentialVm,
            Self::ConfidentialVm => vm == ConfidentialVm,
            Self::ConfidentialVmSupported => vm != TrustedLaunch,
            Self::TrustedLaunchAndConfidentialVmSupported => true,
        }
    }

    /// TrustedLaunch and ConfidentialVM definitions live in private galleries only.
    pub fn private_only(self) -> bool {
        self.required_vm().is_some()
    }

    fn is_supported_form(self) -> bool {
        matches!(
            self,
            Self::TrustedLaunchSupported
                | Self::ConfidentialVmSupported
                | Self::TrustedLaunchAndConfidentialVmSupported
        )
    }
}

impl VmType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "Standard",
            Self::TrustedLaunch => "TrustedLaunch",
            Self::ConfidentialVm => "ConfidentialVM",
        }
    }

    /// A disk's `securityProfile.securityType` (`TrustedLaunch`, `ConfidentialVM_…`), or a VM's.
    pub fn of_disk_or_vm(security_type: Option<&str>) -> Self {
        match security_type {
            Some(t) if t.eq_ignore_ascii_case("TrustedLaunch") => Self::TrustedLaunch,
            Some(t) if t.to_ascii_lowercase().starts_with("confidentialvm") => Self::ConfidentialVm,
            _ => Self::Standard,
        }
    }
}

/// The `SecurityType` feature in effect for `version` (`startsAtVersion` respected), Standard
/// when there is none.
pub fn definition_type(features: Option<&Value>, version: Option<&str>) -> DefinitionType {
    let mut found = DefinitionType::Standard;
    let mut best: Option<(i64, i64, i64)> = None;
    for f in features.and_then(Value::as_array).into_iter().flatten() {
        let is_security = f
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.eq_ignore_ascii_case("SecurityType"));
        let Some(t) = f
            .get("value")
            .and_then(Value::as_str)
            .and_then(DefinitionType::parse)
        else {
            continue;
        };
        if !is_security {
            continue;
        }
        let starts = f
            .get("startsAtVersion")
            .and_then(Value::as_str)
            .and_then(version_triple)
            .unwrap_or((0, 0, 0));
        if let Some(v) = version.and_then(version_triple)
            && v < starts
        {
            continue;
        }
        if best.is_none_or(|b| starts >= b) {
            best = Some(starts);
            found = t;
        }
    }
    found
}

fn version_triple(v: &str) -> Option<(i64, i64, i64)> {
    let mut it = v.split('.').map(|p| p.parse::<i64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// Definition defaults from GalleryRP 2025-03-03 (azure-today §A.3, Learn
/// compute-gallery-whats-new): `hyperVGeneration` V2 and, for a V2 definition without one,
/// the feature `SecurityType: TrustedLaunchSupported`. Earlier api-versions default to V1.
pub fn definition_defaults(api_version: &str, props: &mut Value) {
    let modern = api_version >= "2025-03-03";
    if props.get("hyperVGeneration").is_none_or(Value::is_null) {
        props["hyperVGeneration"] = json!(if modern { "V2" } else { "V1" });
    }
    let v2 = props["hyperVGeneration"] == "V2";
    let has_security = props
        .get("features")
        .and_then(Value::as_array)
        .is_some_and(|fs| {
            fs.iter().any(|f| {
                f.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case("SecurityType"))
            })
        });
    if modern && v2 && !has_security {
        if !props["features"].is_array() {
            props["features"] = json!([]);
        }
        props["features"]
            .as_array_mut()
            .expect("just made an array")
            .push(json!({"name": "SecurityType", "value": "TrustedLaunchSupported"}));
    }
}

/// Refusals of a definition's security features: unknown values, and Trusted Launch or
/// Confidential VM on generation 1 (both inferred).
pub fn check_definition(props: &Value) -> Result<(), ArmError> {
    let features = props.get("features");
    for f in features.and_then(Value::as_array).into_iter().flatten() {
        let is_security = f
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.eq_ignore_ascii_case("SecurityType"));
        let value = f.get("value").and_then(Value::as_str).unwrap_or_default();
        if is_security && DefinitionType::parse(value).is_none() {
            return Err(ArmError::invalid(format!(
                "The value '{value}' of the gallery image feature 'SecurityType' is not supported. Supported values are '{}'.",
                DEFINITION_TYPES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join("', '")
            ))
            .target("galleryImage.properties.features"));
        }
    }
    let t = definition_type(features, None);
    if t != DefinitionType::Standard && props["hyperVGeneration"] == "V1" {
        return Err(ArmError::invalid(format!(
            "The security type '{}' requires hyperVGeneration 'V2'.",
            t.as_str()
        ))
        .target("galleryImage.properties.hyperVGeneration"));
    }
    Ok(())
}

/// What kind of resource a version's source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    ManagedImage,
    VirtualMachine,
    Disk,
    Snapshot,
    GalleryVersion,
}

/// The security facts of a version source: its generation where known, the security type of
/// the VM or disk it is, or the definition type of the gallery version.
#[derive(Debug, Clone)]
pub struct SourceSecurity {
    pub kind: SourceKind,
    pub generation: Option<String>,
    pub vm_type: VmType,
    pub definition: Option<DefinitionType>,
}

/// Whether a definition of type `def` and generation `def_gen` accepts `src` (azure-today §A.2,
/// §A.4). Generation mismatch: 409 Conflict (verified, troubleshooting-shared-images).
/// `*Supported` types refuse VMs, disks and snapshots with the message packer-plugin-azure #304
/// quotes. The other refusals are inferred from the table.
pub fn check_version_source(
    def: DefinitionType,
    def_gen: &str,
    src: &SourceSecurity,
    id: &str,
) -> Result<(), ArmError> {
    if let Some(g) = &src.generation
        && !g.eq_ignore_ascii_case(def_gen)
    {
        return Err(ArmError::new(
            409,
            "Conflict",
            format!(
                "The resource with id '{id}' has a different Hypervisor generation ['{g}'] than the parent gallery image Hypervisor generation ['{def_gen}']."
            ),
        ));
    }
    let target = "galleryImageVersion.properties.storageProfile";
    let refuse = |why: String| {
        Err(ArmError::invalid(format!(
            "The security type '{}' is not supported for the source id '{id}'. {why}",
            def.as_str()
        ))
        .target(target))
    };
    use SourceKind::*;
    match src.kind {
        GalleryVersion => {
            let from = src.definition.unwrap_or(DefinitionType::Standard);
            let fits = from.required_vm().is_none_or(|v| def.allows_vm(v))
                && def.required_vm().is_none_or(|v| from.allows_vm(v));
            if fits {
                Ok(())
            } else {
                refuse(format!(
                    "The source gallery image version has security type '{}'.",
                    from.as_str()
                ))
            }
        }
        VirtualMachine | Disk | Snapshot if def.is_supported_form() => refuse(
            "Currently only Vhd Blob, User Image and Gallery Image Version sources are supported"
                .into(),
        ),
        ManagedImage if def.required_vm().is_some() => refuse(format!(
            "Managed images cannot be the source of a '{}' image; use an image definition with security type 'TrustedLaunchSupported', or a {} virtual machine, managed disk or snapshot.",
            def.as_str(),
            def.required_vm().map(VmType::as_str).unwrap_or_default()
        )),
        ManagedImage => Ok(()),
        VirtualMachine | Disk | Snapshot => {
            let wanted = def.required_vm().unwrap_or(VmType::Standard);
            let fits = match (def, src.kind) {
                // Any generation 2 OS disk or snapshot can become a Trusted Launch image.
                (DefinitionType::TrustedLaunch, Disk | Snapshot) => {
                    src.vm_type != VmType::ConfidentialVm
                }
                _ => src.vm_type == wanted,
            };
            if fits {
                Ok(())
            } else {
                refuse(format!(
                    "The source has security type '{}'; it needs '{}'.",
                    src.vm_type.as_str(),
                    wanted.as_str()
                ))
            }
        }
    }
}

/// Sizes that expose `TrustedLaunchDisabled=True` (azure-today §A.5): the Av2, Dv2/DSv2 and Dv3
/// families, and generation 1 only sizes (Basic_A*, Standard_A0–A11). A documented table of the
/// default world, not Azure's whole catalogue.
pub fn trusted_launch_capable(size: &str) -> bool {
    let s = size.to_ascii_lowercase();
    if s.starts_with("basic_a") {
        return false;
    }
    let Some(rest) = s.strip_prefix("standard_") else {
        return true;
    };
    let family: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let tail = &rest[family.len()..];
    let digits: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
    let suffix = &tail[digits.len()..];
    if digits.is_empty() {
        return true;
    }
    !matches!(
        (family.as_str(), suffix),
        ("a", "" | "_v2" | "m_v2") | ("d" | "ds", "_v2" | "_v2_promo") | ("d", "_v3")
    )
}

/// Sizes that run Confidential VMs: the DCas/DCads/ECas/ECads and DCes/DCeds/ECes/ECeds v5 and
/// v6 families (Learn: confidential VM sizes; the refusal's wording is inferred from §A.5's).
pub fn confidential_capable(size: &str) -> bool {
    let s = size.to_ascii_lowercase();
    (s.starts_with("standard_dc") || s.starts_with("standard_ec"))
        && [
            "as_v5", "ads_v5", "es_v5", "eds_v5", "as_v6", "ads_v6", "es_v6", "eds_v6",
        ]
        .iter()
        .any(|suffix| s.ends_with(suffix))
}

/// What the VM's image allows: its generation and, for a gallery image, its definition's type
/// (None for managed images, which carry no security type).
#[derive(Debug, Clone)]
pub struct ImageSecurity {
    pub generation: String,
    pub definition: Option<DefinitionType>,
}

/// The VM-side request: its `securityProfile`, its `storageProfile.osDisk` and its size.
pub struct VmRequest<'a> {
    pub security_profile: Option<&'a Value>,
    pub os_disk: Option<&'a Value>,
    pub size: &'a str,
}

fn bad_request(message: impl Into<String>) -> ArmError {
    ArmError::new(400, "BadRequest", message)
}

/// Checks a VM's (or scale set's) security settings against its image and size, and returns
/// the security type it gets. `standard_registered`: the subscription has
/// `Microsoft.Compute/UseStandardSecurityType`.
pub fn check_vm(
    vm: &VmRequest<'_>,
    image: Option<&ImageSecurity>,
    standard_registered: bool,
) -> Result<VmType, ArmError> {
    let profile = vm.security_profile.filter(|p| !p.is_null());
    let asked = super::enum_value(
        profile.and_then(|p| p.get("securityType")),
        &["TrustedLaunch", "ConfidentialVM", "Standard"],
        "securityProfile.securityType",
    )?;
    let vm_type = match asked.as_deref() {
        Some("TrustedLaunch") => VmType::TrustedLaunch,
        Some("ConfidentialVM") => VmType::ConfidentialVm,
        Some(_) => {
            // §A.8 (verified): explicit Standard needs the subscription feature.
            if !standard_registered {
                return Err(ArmError::invalid(
                    "The value of parameter securityProfile.securityType is invalid.",
                )
                .target("securityProfile.securityType"));
            }
            VmType::Standard
        }
        None => VmType::Standard,
    };
    let uefi = profile
        .and_then(|p| p.get("uefiSettings"))
        .filter(|u| !u.is_null());
    if vm_type == VmType::Standard && uefi.is_some() {
        return Err(bad_request(
            "Use of UEFI settings is not supported when security type is 'Standard'.",
        ));
    }
    if let Some(image) = image {
        if let Some(def) = image.definition {
            if let Some(required) = def.required_vm()
                && required != vm_type
            {
                return Err(bad_request(format!(
                    "The provided gallery image only supports creation of VMs and VM Scale Sets with '{}' security type.",
                    required.as_str()
                )));
            }
            if !def.allows_vm(vm_type) {
                return Err(bad_request(format!(
                    "The provided gallery image does not support creation of VMs and VM Scale Sets with '{}' security type.",
                    vm_type.as_str()
                )));
            }
        }
        if vm_type != VmType::Standard && !image.generation.eq_ignore_ascii_case("V2") {
            return Err(bad_request(format!(
                "The '{}' security type is only supported for Hyper-V generation 2 images; the image is generation '{}'.",
                vm_type.as_str(),
                image.generation
            )));
        }
    }
    let size_fits = match vm_type {
        VmType::Standard => true,
        VmType::TrustedLaunch => trusted_launch_capable(vm.size),
        VmType::ConfidentialVm => confidential_capable(vm.size),
    };
    if !size_fits {
        return Err(bad_request(format!(
            "The VM size '{}' is not supported for creation of VMs and Virtual Machine Scale Set with '{}' security type.",
            vm.size,
            vm_type.as_str()
        )));
    }
    if vm_type == VmType::ConfidentialVm {
        let on = |k: &str| {
            uefi.and_then(|u| u.get(k))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        if !on("secureBootEnabled") || !on("vTpmEnabled") {
            return Err(bad_request(
                "Confidential VMs require 'securityProfile.uefiSettings' with 'secureBootEnabled' and 'vTpmEnabled' set to true.",
            ));
        }
        let encryption = vm
            .os_disk
            .and_then(|d| d.pointer("/managedDisk/securityProfile/securityEncryptionType"))
            .filter(|v| !v.is_null());
        if encryption.is_none() {
            return Err(bad_request(
                "Required parameter for Confidential VMs 'managedDisk.securityProfile.securityEncryptionType' is missing (null).",
            ));
        }
        super::enum_value(
            encryption,
            &[
                "VMGuestStateOnly",
                "DiskWithVMGuestState",
                "NonPersistedTPM",
            ],
            "storageProfile.osDisk.managedDisk.securityProfile.securityEncryptionType",
        )?;
    }
    Ok(vm_type)
}

/// The `securityProfile` a VM is stored with: Trusted Launch gets secure boot and vTPM on
/// unless set (the portal's and Azure CLI's defaults; inferred for the API); a VM without one
/// reads back `securityType: Standard` from Compute api-version 2025-11-01 (azure-today §A.8).
pub fn stored_profile(asked: Option<&Value>, vm_type: VmType, api_version: &str) -> Option<Value> {
    let mut profile = asked.filter(|p| p.is_object()).cloned();
    match vm_type {
        VmType::Standard if api_version >= "2025-11-01" => {
            let p = profile.get_or_insert_with(|| json!({}));
            p["securityType"] = json!("Standard");
        }
        VmType::Standard => {}
        VmType::TrustedLaunch | VmType::ConfidentialVm => {
            let p = profile.get_or_insert_with(|| json!({}));
            p["securityType"] = json!(vm_type.as_str());
            if !p["uefiSettings"].is_object() {
                p["uefiSettings"] = json!({});
            }
            for k in ["secureBootEnabled", "vTpmEnabled"] {
                if p["uefiSettings"].get(k).is_none() {
                    p["uefiSettings"][k] = json!(true);
                }
            }
        }
    }
    profile
}

/// The disk `securityProfile.securityType` of a VM's OS disk.
pub fn disk_security_type(vm_type: VmType, encryption: Option<&str>) -> Option<&'static str> {
    match vm_type {
        VmType::Standard => None,
        VmType::TrustedLaunch => Some("TrustedLaunch"),
        VmType::ConfidentialVm => Some(match encryption {
            Some(e) if e.eq_ignore_ascii_case("DiskWithVMGuestState") => {
                "ConfidentialVM_DiskEncryptedWithPlatformKey"
            }
            Some(e) if e.eq_ignore_ascii_case("NonPersistedTPM") => {
                "ConfidentialVM_NonPersistedTPM"
            }
            _ => "ConfidentialVM_VMGuestStateOnlyEncryptedWithPlatformKey",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DefinitionType as D;
    use VmType as V;

    #[test]
    fn the_table_of_vms_each_definition_type_creates() {
        let table = [
            (D::Standard, [true, false, false]),
            (D::TrustedLaunch, [false, true, false]),
            (D::TrustedLaunchSupported, [true, true, false]),
            (D::ConfidentialVm, [false, false, true]),
            (D::ConfidentialVmSupported, [true, false, true]),
            (
                D::TrustedLaunchAndConfidentialVmSupported,
                [true, true, true],
            ),
        ];
        for (def, allowed) in table {
            for (vm, want) in [V::Standard, V::TrustedLaunch, V::ConfidentialVm]
                .into_iter()
                .zip(allowed)
            {
                assert_eq!(def.allows_vm(vm), want, "{def:?} / {vm:?}");
            }
            assert_eq!(
                def.private_only(),
                matches!(def, D::TrustedLaunch | D::ConfidentialVm)
            );
            assert_eq!(D::parse(&def.as_str().to_lowercase()), Some(def));
        }
    }

    #[test]
    fn definitions_at_2025_03_03_default_to_v2_trusted_launch_supported() {
        let mut p = json!({"osType": "Linux"});
        definition_defaults("2025-03-03", &mut p);
        assert_eq!(p["hyperVGeneration"], "V2");
        assert_eq!(
            p["features"],
            json!([{"name": "SecurityType", "value": "TrustedLaunchSupported"}])
        );

        let mut opted_out = json!({"features": [{"name": "SecurityType", "value": "Standard"}]});
        definition_defaults("2026-03-03", &mut opted_out);
        assert_eq!(opted_out["features"].as_array().unwrap().len(), 1);

        let mut v1 = json!({"hyperVGeneration": "V1"});
        definition_defaults("2025-03-03", &mut v1);
        assert!(v1.get("features").is_none(), "no Trusted Launch on V1");

        let mut old = json!({});
        definition_defaults("2024-03-03", &mut old);
        assert_eq!(old["hyperVGeneration"], "V1");
        assert!(old.get("features").is_none());
        assert_eq!(definition_type(old.get("features"), None), D::Standard);
    }

    #[test]
    fn starts_at_version_decides_which_security_type_a_version_has() {
        let features = json!([
            {"name": "SecurityType", "value": "TrustedLaunchSupported"},
            {"name": "SecurityType", "value": "TrustedLaunch", "startsAtVersion": "2.0.0"},
            {"name": "IsAcceleratedNetworkSupported", "value": "true"}
        ]);
        assert_eq!(
            definition_type(Some(&features), Some("1.9.0")),
            D::TrustedLaunchSupported
        );
        assert_eq!(
            definition_type(Some(&features), Some("2.0.0")),
            D::TrustedLaunch
        );
        assert_eq!(definition_type(Some(&features), None), D::TrustedLaunch);
    }

    #[test]
    fn definition_security_values_are_checked() {
        let bad = json!({"hyperVGeneration": "V2", "features": [{"name": "SecurityType", "value": "Trusted"}]});
        assert_eq!(check_definition(&bad).unwrap_err().code, "InvalidParameter");
        let v1 = json!({"hyperVGeneration": "V1", "features": [{"name": "SecurityType", "value": "TrustedLaunch"}]});
        assert!(check_definition(&v1).is_err());
        let ok = json!({"hyperVGeneration": "V1", "features": [{"name": "SecurityType", "value": "Standard"}]});
        assert!(check_definition(&ok).is_ok());
    }

    fn src(kind: SourceKind, vm_type: V) -> SourceSecurity {
        SourceSecurity {
            kind,
            generation: Some("V2".into()),
            vm_type,
            definition: None,
        }
    }

    #[test]
    fn the_table_of_sources_each_definition_type_accepts() {
        use SourceKind::*;
        let image = src(ManagedImage, V::Standard);
        let vm = src(VirtualMachine, V::Standard);
        let tl_vm = src(VirtualMachine, V::TrustedLaunch);
        let snapshot = src(Snapshot, V::Standard);
        let cvm_disk = src(Disk, V::ConfidentialVm);
        let table: [(D, &SourceSecurity, bool); 13] = [
            (D::TrustedLaunch, &image, false),
            (D::TrustedLaunch, &vm, false),
            (D::TrustedLaunch, &tl_vm, true),
            (D::TrustedLaunch, &snapshot, true),
            (D::TrustedLaunch, &cvm_disk, false),
            (D::TrustedLaunchSupported, &image, true),
            (D::TrustedLaunchSupported, &vm, false),
            (D::TrustedLaunchSupported, &snapshot, false),
            (D::Standard, &image, true),
            (D::Standard, &vm, true),
            (D::Standard, &tl_vm, false),
            (D::ConfidentialVm, &cvm_disk, true),
            (D::ConfidentialVm, &snapshot, false),
        ];
        for (def, source, ok) in table {
            let got = check_version_source(def, "V2", source, "/x");
            assert_eq!(got.is_ok(), ok, "{def:?} from {source:?}: {got:?}");
        }
        let supported =
            check_version_source(D::TrustedLaunchSupported, "V2", &vm, "/vm").unwrap_err();
        assert_eq!(
            supported.message,
            "The security type 'TrustedLaunchSupported' is not supported for the source id '/vm'. Currently only Vhd Blob, User Image and Gallery Image Version sources are supported"
        );
    }

    #[test]
    fn gallery_version_sources_must_fit_both_definitions() {
        let from = |t: D| SourceSecurity {
            kind: SourceKind::GalleryVersion,
            generation: Some("V2".into()),
            vm_type: V::Standard,
            definition: Some(t),
        };
        assert!(
            check_version_source(
                D::TrustedLaunchSupported,
                "V2",
                &from(D::TrustedLaunch),
                "/v"
            )
            .is_ok()
        );
        assert!(check_version_source(D::Standard, "V2", &from(D::TrustedLaunch), "/v").is_err());
        assert!(check_version_source(D::TrustedLaunch, "V2", &from(D::Standard), "/v").is_err());
        assert!(
            check_version_source(
                D::ConfidentialVmSupported,
                "V2",
                &from(D::TrustedLaunchSupported),
                "/v"
            )
            .is_ok()
        );
    }

    #[test]
    fn a_generation_mismatch_is_a_conflict_quoting_both_generations() {
        let mut v1 = src(SourceKind::ManagedImage, V::Standard);
        v1.generation = Some("V1".into());
        let e = check_version_source(D::TrustedLaunchSupported, "V2", &v1, "/img").unwrap_err();
        assert_eq!((e.status.as_u16(), e.code.as_str()), (409, "Conflict"));
        assert_eq!(
            e.message,
            "The resource with id '/img' has a different Hypervisor generation ['V1'] than the parent gallery image Hypervisor generation ['V2']."
        );
    }

    #[test]
    fn trusted_launch_and_confidential_sizes() {
        for (size, tl) in [
            ("Standard_D2s_v5", true),
            ("Standard_D4ds_v5", true),
            ("Standard_B2s", true),
            ("Standard_DS1_v2", false),
            ("Standard_D2_v2", false),
            ("Standard_D4_v3", false),
            ("Standard_D4s_v3", true),
            ("Standard_A2_v2", false),
            ("Standard_A4m_v2", false),
            ("Standard_A1", false),
            ("Basic_A1", false),
        ] {
            assert_eq!(trusted_launch_capable(size), tl, "{size}");
        }
        assert!(confidential_capable("Standard_DC2as_v5"));
        assert!(confidential_capable("Standard_EC4ads_v5"));
        assert!(!confidential_capable("Standard_D2s_v5"));
    }

    fn vm<'a>(profile: &'a Value, disk: &'a Value, size: &'a str) -> VmRequest<'a> {
        VmRequest {
            security_profile: Some(profile),
            os_disk: Some(disk),
            size,
        }
    }

    #[test]
    fn vm_checks_in_order_with_azures_messages() {
        let none = json!(null);
        let tl = json!({"securityType": "TrustedLaunch"});
        let standard = json!({"securityType": "Standard"});
        let std_uefi = json!({"uefiSettings": {"secureBootEnabled": true}});
        let cvm = json!({"securityType": "ConfidentialVM", "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}});
        let cvm_no_tpm =
            json!({"securityType": "ConfidentialVM", "uefiSettings": {"secureBootEnabled": true}});
        let disk = json!({});
        let cvm_disk = json!({"managedDisk": {"securityProfile": {"securityEncryptionType": "VMGuestStateOnly"}}});
        let gallery = |t: D| ImageSecurity {
            generation: "V2".into(),
            definition: Some(t),
        };
        let v1_image = ImageSecurity {
            generation: "V1".into(),
            definition: None,
        };
        type Case<'a> = (
            VmRequest<'a>,
            Option<ImageSecurity>,
            bool,
            Result<V, &'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                vm(&none, &disk, "Standard_D2s_v5"),
                Some(gallery(D::TrustedLaunch)),
                false,
                Err(
                    "The provided gallery image only supports creation of VMs and VM Scale Sets with 'TrustedLaunch' security type.",
                ),
            ),
            (
                vm(&tl, &disk, "Standard_D2s_v5"),
                Some(gallery(D::TrustedLaunch)),
                false,
                Ok(V::TrustedLaunch),
            ),
            (
                vm(&none, &disk, "Standard_D2s_v5"),
                Some(gallery(D::TrustedLaunchSupported)),
                false,
                Ok(V::Standard),
            ),
            (
                vm(&tl, &disk, "Standard_DS1_v2"),
                Some(gallery(D::TrustedLaunchSupported)),
                false,
                Err(
                    "The VM size 'Standard_DS1_v2' is not supported for creation of VMs and Virtual Machine Scale Set with 'TrustedLaunch' security type.",
                ),
            ),
            (
                vm(&standard, &disk, "Standard_D2s_v5"),
                None,
                false,
                Err("The value of parameter securityProfile.securityType is invalid."),
            ),
            (
                vm(&standard, &disk, "Standard_D2s_v5"),
                None,
                true,
                Ok(V::Standard),
            ),
            (
                vm(&std_uefi, &disk, "Standard_D2s_v5"),
                None,
                true,
                Err("Use of UEFI settings is not supported when security type is 'Standard'."),
            ),
            (
                vm(&tl, &disk, "Standard_D2s_v5"),
                Some(gallery(D::Standard)),
                false,
                Err(
                    "The provided gallery image does not support creation of VMs and VM Scale Sets with 'TrustedLaunch' security type.",
                ),
            ),
            (
                vm(&tl, &disk, "Standard_D2s_v5"),
                Some(v1_image),
                false,
                Err(
                    "The 'TrustedLaunch' security type is only supported for Hyper-V generation 2 images; the image is generation 'V1'.",
                ),
            ),
            (
                vm(&cvm, &disk, "Standard_DC2as_v5"),
                Some(gallery(D::ConfidentialVm)),
                false,
                Err(
                    "Required parameter for Confidential VMs 'managedDisk.securityProfile.securityEncryptionType' is missing (null).",
                ),
            ),
            (
                vm(&cvm_no_tpm, &cvm_disk, "Standard_DC2as_v5"),
                Some(gallery(D::ConfidentialVm)),
                false,
                Err(
                    "Confidential VMs require 'securityProfile.uefiSettings' with 'secureBootEnabled' and 'vTpmEnabled' set to true.",
                ),
            ),
            (
                vm(&cvm, &cvm_disk, "Standard_D2s_v5"),
                Some(gallery(D::ConfidentialVm)),
                false,
                Err(
                    "The VM size 'Standard_D2s_v5' is not supported for creation of VMs and Virtual Machine Scale Set with 'ConfidentialVM' security type.",
                ),
            ),
            (
                vm(&cvm, &cvm_disk, "Standard_DC2as_v5"),
                Some(gallery(D::ConfidentialVm)),
                false,
                Ok(V::ConfidentialVm),
            ),
        ];
        for (i, (req, image, registered, want)) in cases.into_iter().enumerate() {
            let got = check_vm(&req, image.as_ref(), registered);
            match (got, want) {
                (Ok(t), Ok(w)) => assert_eq!(t, w, "case {i}"),
                (Err(e), Err(m)) => assert_eq!(e.message, m, "case {i}"),
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn stored_profiles_fill_trusted_launch_defaults_and_echo_standard_from_2025_11_01() {
        let tl = stored_profile(
            Some(&json!({"securityType": "TrustedLaunch"})),
            V::TrustedLaunch,
            "2025-04-01",
        )
        .unwrap();
        assert_eq!(
            tl["uefiSettings"],
            json!({"secureBootEnabled": true, "vTpmEnabled": true})
        );
        assert_eq!(stored_profile(None, V::Standard, "2025-04-01"), None);
        assert_eq!(
            stored_profile(None, V::Standard, "2025-11-01"),
            Some(json!({"securityType": "Standard"}))
        );
        assert_eq!(
            disk_security_type(V::ConfidentialVm, Some("NonPersistedTPM")),
            Some("ConfidentialVM_NonPersistedTPM")
        );
    }
}
