//! Security types of today's Azure (shared/azure-today.md §A): what an image definition's
//! `SecurityType` lets its versions be made from and its VMs be, and the security profile a
//! VM is created with. Pure, so every refusal is an `InvalidSpec` before any write.

use crate::{
    api::virtual_machine::{VmSecurity, VmSecurityType},
    arm::models,
};

/// An image definition's `SecurityType` feature (Learn: shared-image-galleries, "Trusted
/// Launch and Confidential VM"); a definition without one is `Standard`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageSecurity {
    Standard,
    TrustedLaunch,
    TrustedLaunchSupported,
    ConfidentialVm,
    ConfidentialVmSupported,
    TrustedLaunchAndConfidentialVmSupported,
}

const NAMES: [(&str, ImageSecurity); 6] = [
    ("Standard", ImageSecurity::Standard),
    ("TrustedLaunch", ImageSecurity::TrustedLaunch),
    (
        "TrustedLaunchSupported",
        ImageSecurity::TrustedLaunchSupported,
    ),
    ("ConfidentialVM", ImageSecurity::ConfidentialVm),
    (
        "ConfidentialVMSupported",
        ImageSecurity::ConfidentialVmSupported,
    ),
    (
        "TrustedLaunchAndConfidentialVmSupported",
        ImageSecurity::TrustedLaunchAndConfidentialVmSupported,
    ),
];

/// What an image version is made from, as far as its security matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    ManagedImage,
    VirtualMachine,
    /// A managed disk or a snapshot of one.
    Disk,
    GalleryVersion,
}

/// The facts of a version's OS source read from ARM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFacts {
    pub kind: SourceKind,
    /// `V1` or `V2`, when the source says.
    pub generation: Option<String>,
    /// The security type of a VM, disk or snapshot (`Standard` when it reports none).
    pub vm_security: VmSecurityType,
    /// A gallery version's definition type.
    pub definition: Option<ImageSecurity>,
}

impl ImageSecurity {
    pub fn parse(value: &str) -> Option<Self> {
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(value))
            .map(|(_, t)| *t)
    }

    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, t)| *t == self)
            .map(|(n, _)| *n)
            .expect("every type is named")
    }

    /// The `SecurityType` among a definition's features (as ARM returns them), `Standard` when
    /// there is none.
    pub fn of_features<'a>(features: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        features
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("SecurityType"))
            .and_then(|(_, value)| Self::parse(value))
            .unwrap_or(Self::Standard)
    }

    /// The same, from ARM's body of a definition.
    pub fn of_definition(image: &models::GalleryImage) -> Self {
        let features = image.props().features.unwrap_or_default();
        Self::of_features(features.iter().map(|f| (f.name.as_str(), f.value.as_str())))
    }

    /// The VM security types the definition's VMs may have (azure-today §A.2 table).
    pub fn allows(self, vm: VmSecurityType) -> bool {
        use VmSecurityType::*;
        match self {
            Self::Standard => vm == Standard,
            Self::TrustedLaunch => vm == TrustedLaunch,
            Self::TrustedLaunchSupported => vm != ConfidentialVm,
            Self::ConfidentialVm => vm == ConfidentialVm,
            Self::ConfidentialVmSupported => vm != TrustedLaunch,
            Self::TrustedLaunchAndConfidentialVmSupported => true,
        }
    }

    /// The VM security type a VM gets when its spec leaves it out: the strongest the image is
    /// made for, so a VM from a Trusted Launch image just works. `ConfidentialVMSupported` gives
    /// `Standard` (Confidential VMs need particular sizes a VM must ask for; Trusted Launch is not
    /// among the types such an image allows).
    pub fn default_vm(self) -> VmSecurityType {
        match self {
            Self::TrustedLaunch
            | Self::TrustedLaunchSupported
            | Self::TrustedLaunchAndConfidentialVmSupported => VmSecurityType::TrustedLaunch,
            Self::ConfidentialVm => VmSecurityType::ConfidentialVm,
            Self::Standard | Self::ConfidentialVmSupported => VmSecurityType::Standard,
        }
    }

    /// The types a definition must be `Private` for (azure-today §A.2, "Sharing").
    pub fn private_only(self) -> bool {
        matches!(self, Self::TrustedLaunch | Self::ConfidentialVm)
    }

    fn supported_form(self) -> bool {
        matches!(
            self,
            Self::TrustedLaunchSupported
                | Self::ConfidentialVmSupported
                | Self::TrustedLaunchAndConfidentialVmSupported
        )
    }

    /// Whether a version of this definition (generation `generation`) can be made from
    /// `source`; the refusal says why (azure-today §A.2, §A.4).
    pub fn accepts(self, generation: &str, source: &SourceFacts) -> Result<(), String> {
        if let Some(g) = &source.generation
            && !g.eq_ignore_ascii_case(generation)
        {
            return Err(format!(
                "it is a generation {g} source and the image definition is {generation}"
            ));
        }
        use SourceKind::*;
        match source.kind {
            GalleryVersion => {
                let from = source.definition.unwrap_or(Self::Standard);
                let compatible = [
                    VmSecurityType::Standard,
                    VmSecurityType::TrustedLaunch,
                    VmSecurityType::ConfidentialVm,
                ]
                .into_iter()
                .filter(|vm| from.allows(*vm))
                .any(|vm| self.allows(vm));
                if compatible {
                    Ok(())
                } else {
                    Err(format!(
                        "its definition's security type is {}, whose VMs a {} image cannot start",
                        from.as_str(),
                        self.as_str()
                    ))
                }
            }
            ManagedImage if matches!(self, Self::TrustedLaunch | Self::ConfidentialVm) => {
                Err(format!(
                    "a managed image cannot be the source of a {} image (use an image definition with SecurityType {}Supported, or capture a {} VM, disk or snapshot)",
                    self.as_str(),
                    self.as_str(),
                    self.as_str()
                ))
            }
            ManagedImage => Ok(()),
            VirtualMachine | Disk if self.supported_form() => Err(format!(
                "a {} image is made only from managed images, VHDs and gallery image versions",
                self.as_str()
            )),
            VirtualMachine | Disk => {
                let fits = match self {
                    // Any generation 2 OS disk or snapshot can become a Trusted Launch image.
                    Self::TrustedLaunch if source.kind == Disk => {
                        source.vm_security != VmSecurityType::ConfidentialVm
                    }
                    Self::TrustedLaunch => source.vm_security == VmSecurityType::TrustedLaunch,
                    Self::ConfidentialVm => source.vm_security == VmSecurityType::ConfidentialVm,
                    _ => source.vm_security == VmSecurityType::Standard,
                };
                if fits {
                    Ok(())
                } else {
                    Err(format!(
                        "it has security type {}, which a {} image does not take",
                        vm_type_str(source.vm_security),
                        self.as_str()
                    ))
                }
            }
        }
    }
}

pub fn vm_type_str(t: VmSecurityType) -> &'static str {
    match t {
        VmSecurityType::Standard => "Standard",
        VmSecurityType::TrustedLaunch => "TrustedLaunch",
        VmSecurityType::ConfidentialVm => "ConfidentialVM",
    }
}

/// The security type a VM, disk or snapshot reports (`securityProfile.securityType`;
/// disks write `ConfidentialVM_…` for their encryption), `Standard` when none.
pub fn vm_security_of(reported: Option<&str>) -> VmSecurityType {
    match reported {
        Some(t) if t.eq_ignore_ascii_case("TrustedLaunch") => VmSecurityType::TrustedLaunch,
        Some(t) if t.to_ascii_lowercase().starts_with("confidentialvm") => {
            VmSecurityType::ConfidentialVm
        }
        _ => VmSecurityType::Standard,
    }
}

/// The security profile of a new VM from an image of type `image` (generation `generation`,
/// when known): the spec's, or the image's default; `InvalidSpec`'s message when the image
/// cannot start it. `None` for Standard: Azure's implicit default needs no profile, while an
/// explicit `Standard` needs a subscription feature (azure-today §A.8).
pub fn vm_profile(
    spec: Option<&VmSecurity>,
    image: ImageSecurity,
    generation: Option<&str>,
) -> Result<(VmSecurityType, Option<models::SecurityProfile>), String> {
    let asked = spec.and_then(|s| s.type_);
    let gen1 = generation.is_some_and(|g| g.eq_ignore_ascii_case("V1"));
    let wanted = asked.unwrap_or(if gen1 {
        VmSecurityType::Standard
    } else {
        image.default_vm()
    });
    if !image.allows(wanted) {
        return Err(format!(
            "the image's definition has SecurityType {}, which cannot start a {} VM{}",
            image.as_str(),
            vm_type_str(wanted),
            if asked.is_some() {
                " (spec.security.type)"
            } else {
                ""
            }
        ));
    }
    if gen1 && wanted != VmSecurityType::Standard {
        return Err(format!(
            "a {} VM needs a generation 2 image, and this one is V1",
            vm_type_str(wanted)
        ));
    }
    let profile = match wanted {
        VmSecurityType::Standard => None,
        other => Some(models::SecurityProfile {
            security_type: Some(vm_type_str(other).into()),
            uefi_settings: Some(models::UefiSettings {
                secure_boot_enabled: Some(spec.and_then(|s| s.secure_boot).unwrap_or(true)),
                v_tpm_enabled: Some(spec.and_then(|s| s.v_tpm).unwrap_or(true)),
            }),
        }),
    };
    Ok((wanted, profile))
}

#[cfg(test)]
mod tests {
    use super::*;
    use VmSecurityType::*;

    fn source(kind: SourceKind, generation: Option<&str>, vm: VmSecurityType) -> SourceFacts {
        SourceFacts {
            kind,
            generation: generation.map(str::to_string),
            vm_security: vm,
            definition: None,
        }
    }

    #[test]
    fn definitions_take_the_sources_azure_lists() {
        use SourceKind::*;
        let image = source(ManagedImage, Some("V2"), Standard);
        let tl_vm = source(VirtualMachine, Some("V2"), TrustedLaunch);
        let std_vm = source(VirtualMachine, Some("V2"), Standard);
        let snapshot = source(Disk, Some("V2"), Standard);
        let cases = [
            (ImageSecurity::TrustedLaunchSupported, &image, true),
            (ImageSecurity::TrustedLaunchSupported, &tl_vm, false),
            (ImageSecurity::TrustedLaunchSupported, &snapshot, false),
            (ImageSecurity::TrustedLaunch, &image, false),
            (ImageSecurity::TrustedLaunch, &tl_vm, true),
            (ImageSecurity::TrustedLaunch, &std_vm, false),
            (ImageSecurity::TrustedLaunch, &snapshot, true),
            (ImageSecurity::Standard, &image, true),
            (ImageSecurity::Standard, &std_vm, true),
            (ImageSecurity::Standard, &tl_vm, false),
            (ImageSecurity::ConfidentialVm, &snapshot, false),
        ];
        for (definition, src, ok) in cases {
            assert_eq!(
                definition.accepts("V2", src).is_ok(),
                ok,
                "{definition:?} from {src:?}"
            );
        }
        let gen1 = source(ManagedImage, Some("V1"), Standard);
        let err = ImageSecurity::TrustedLaunchSupported
            .accepts("V2", &gen1)
            .unwrap_err();
        assert!(err.contains("generation V1"), "{err}");
    }

    #[test]
    fn gallery_versions_must_start_vms_both_images_allow() {
        let from = |d| SourceFacts {
            kind: SourceKind::GalleryVersion,
            generation: None,
            vm_security: Standard,
            definition: Some(d),
        };
        let tl = ImageSecurity::TrustedLaunch;
        assert!(
            tl.accepts("V2", &from(ImageSecurity::TrustedLaunchSupported))
                .is_ok()
        );
        assert!(tl.accepts("V2", &from(ImageSecurity::Standard)).is_err());
        assert!(
            ImageSecurity::Standard
                .accepts("V2", &from(ImageSecurity::ConfidentialVm))
                .is_err()
        );
    }

    #[test]
    fn a_vm_follows_its_image_unless_it_asks_for_what_the_image_allows() {
        let (t, profile) =
            vm_profile(None, ImageSecurity::TrustedLaunchSupported, Some("V2")).unwrap();
        assert_eq!(t, TrustedLaunch);
        let uefi = profile.unwrap().uefi_settings.unwrap();
        assert_eq!(
            (uefi.secure_boot_enabled, uefi.v_tpm_enabled),
            (Some(true), Some(true))
        );
        assert_eq!(
            vm_profile(None, ImageSecurity::Standard, Some("V2")).unwrap(),
            (Standard, None),
            "Standard sends no profile"
        );
        assert_eq!(
            vm_profile(None, ImageSecurity::TrustedLaunchSupported, Some("V1"))
                .unwrap()
                .0,
            Standard
        );
        let standard = VmSecurity {
            type_: Some(Standard),
            ..Default::default()
        };
        assert_eq!(
            vm_profile(Some(&standard), ImageSecurity::TrustedLaunchSupported, None).unwrap(),
            (Standard, None)
        );
        let err = vm_profile(Some(&standard), ImageSecurity::TrustedLaunch, None).unwrap_err();
        assert!(
            err.contains("TrustedLaunch")
                && err.contains("Standard")
                && err.contains("spec.security.type"),
            "{err}"
        );
        let no_boot = VmSecurity {
            secure_boot: Some(false),
            ..Default::default()
        };
        let (_, p) = vm_profile(Some(&no_boot), ImageSecurity::TrustedLaunch, None).unwrap();
        assert_eq!(
            p.unwrap().uefi_settings.unwrap().secure_boot_enabled,
            Some(false)
        );
        assert_eq!(
            vm_profile(None, ImageSecurity::ConfidentialVm, None)
                .unwrap()
                .0,
            ConfidentialVm
        );
        assert_eq!(
            vm_profile(None, ImageSecurity::ConfidentialVmSupported, None)
                .unwrap()
                .0,
            Standard
        );
    }

    #[test]
    fn features_name_the_type_and_none_is_standard() {
        assert_eq!(
            ImageSecurity::of_features([
                ("IsAcceleratedNetworkSupported", "True"),
                ("securitytype", "trustedlaunchsupported")
            ]),
            ImageSecurity::TrustedLaunchSupported
        );
        assert_eq!(ImageSecurity::of_features([]), ImageSecurity::Standard);
        assert_eq!(
            vm_security_of(Some("ConfidentialVM_DiskEncryptedWithCustomerKey")),
            ConfidentialVm
        );
        assert_eq!(vm_security_of(None), Standard);
    }
}
