"""The ARM simulator driven by the official Azure SDK for Python: its LRO pollers, paging,
error parsing and auxiliary-token policy must all work against it unchanged.

Bodies are written in ARM's JSON shape (the SDK sends plain dicts as they are)."""

import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.core.policies import AuxiliaryAuthenticationPolicy
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

SCOPE = "https://management.azure.com/.default"
FAST = {"polling_interval": 0.05}
# Gallery calls use GalleryRP 2025-03-03, the operator's version and the swagger test_oav.py
# validates the recorded traffic against (the SDK's default is 2026-03-03).
GALLERY_API = "2025-03-03"
GALLERY = {**FAST, "api_version": GALLERY_API}
PASSWORD = "S1mulated-Passw0rd!"


def credential(sim, tenant_key="AZURE_TENANT_ID", client_key="AZURE_CLIENT_ID", secret_key="AZURE_CLIENT_SECRET"):
    return ClientSecretCredential(
        sim[tenant_key],
        sim[client_key],
        sim[secret_key],
        authority=sim["AUTHORITY_HOST"],
        disable_instance_discovery=True,
        connection_verify=sim.ca_file,
    )


def client(cls, sim, cred, subscription, **kwargs):
    return cls(
        cred,
        subscription,
        base_url=sim.endpoint,
        credential_scopes=[SCOPE],
        connection_verify=sim.ca_file,
        **kwargs,
    )


def clients(sim, subscription_key="AZURE_SUBSCRIPTION_ID", tenant_key="AZURE_TENANT_ID"):
    cred = credential(sim, tenant_key)
    sub = sim[subscription_key]
    return (
        client(ResourceManagementClient, sim, cred, sub),
        client(ComputeManagementClient, sim, cred, sub),
        client(NetworkManagementClient, sim, cred, sub),
    )


def retry_while_blocked(action, deadline_s=10):
    """Deleting a parent right after its last child can be refused for a moment (ARM's eventual
    consistency); callers retry, as our operator does."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return action()
        except HttpResponseError as e:
            if e.error is None or e.error.code != "CannotDeleteResource" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def linux_definition(gallery_location="eastus", sku="22_04"):
    return {
        "location": gallery_location,
        "properties": {
            "osType": "Linux",
            "osState": "Generalized",
            "hyperVGeneration": "V2",
            "identifier": {"publisher": "Contoso", "offer": "Ubuntu", "sku": sku},
        },
    }


def nic_body(subnet_id):
    return {
        "location": "eastus",
        "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet_id}}}]},
    }


def vm_body(image_id, nic_id, name):
    return {
        "location": "eastus",
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "storageProfile": {"imageReference": {"id": image_id}},
            "osProfile": {"computerName": name, "adminUsername": "azureuser", "adminPassword": PASSWORD},
            "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": True}}]},
        },
    }


def test_pollers_create_update_and_delete_gallery_definition_version_nic_and_vm(arm_sim):
    resources, compute, network = clients(arm_sim)
    rg = unique("rg-sdk-")
    resources.resource_groups.create_or_update(rg, {"location": "eastus"})

    gallery = compute.galleries.begin_create_or_update(
        rg, "sdk_gallery", {"location": "East US", "properties": {"description": "from the SDK"}}, **GALLERY
    ).result()
    assert gallery.provisioning_state == "Succeeded"
    assert gallery.location == "eastus"
    assert gallery.identifier.unique_name.endswith("-SDK_GALLERY")

    definition = compute.gallery_images.begin_create_or_update(
        rg, "sdk_gallery", "ubuntu", linux_definition(), **GALLERY
    ).result()
    assert definition.provisioning_state == "Succeeded"
    assert definition.architecture == "x64"

    version = compute.gallery_image_versions.begin_create_or_update(
        rg,
        "sdk_gallery",
        "ubuntu",
        "1.0.0",
        {
            "location": "eastus",
            "properties": {
                "publishingProfile": {"targetRegions": [{"name": "eastus"}, {"name": "westeurope"}], "replicaCount": 1},
                "storageProfile": {"source": {"id": arm_sim["SOURCE_LINUX_IMAGE_ID"]}},
                # At 2026-03-03 a version is otherwise undeletable for six months.
                "safetyProfile": {"blockDeletionBeforeEndOfLife": False},
            },
        },
        **GALLERY,
    ).result()
    assert version.provisioning_state == "Succeeded"
    status = compute.gallery_image_versions.get(
        rg, "sdk_gallery", "ubuntu", "1.0.0", expand="ReplicationStatus", api_version=GALLERY_API
    ).replication_status
    assert status.aggregated_state == "Completed"
    assert sorted(s.region for s in status.summary) == ["East US", "West Europe"]
    assert all(s.progress == 100 for s in status.summary)

    nic = network.network_interfaces.begin_create_or_update(
        rg,
        "vm1-nic",
        nic_body(arm_sim["SUBNET_ID"]),
        **FAST,
    ).result()
    assert nic.ip_configurations[0].private_ip_address.startswith("10.0.0.")

    vm = compute.virtual_machines.begin_create_or_update(
        rg,
        "vm1",
        vm_body(version.id, nic.id, "vm1"),
        **FAST,
    ).result()
    assert vm.provisioning_state == "Succeeded"
    assert vm.vm_id
    assert vm.os_profile.admin_password is None

    updated = compute.galleries.begin_update(rg, "sdk_gallery", {"properties": {"description": "updated"}}, **GALLERY).result()
    assert updated.description == "updated"
    tagged = compute.virtual_machines.begin_update(rg, "vm1", {"tags": {"env": "test"}}, **FAST).result()
    assert tagged.tags == {"env": "test"}
    assert tagged.provisioning_state == "Succeeded"

    compute.virtual_machines.begin_delete(rg, "vm1", **FAST).result()
    network.network_interfaces.begin_delete(rg, "vm1-nic", **FAST).result()
    compute.gallery_image_versions.begin_delete(rg, "sdk_gallery", "ubuntu", "1.0.0", **GALLERY).result()
    retry_while_blocked(lambda: compute.gallery_images.begin_delete(rg, "sdk_gallery", "ubuntu", **GALLERY).result())
    retry_while_blocked(lambda: compute.galleries.begin_delete(rg, "sdk_gallery", **GALLERY).result())
    with pytest.raises(ResourceNotFoundError):
        compute.galleries.get(rg, "sdk_gallery", api_version=GALLERY_API)
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machines.get(rg, "vm1")


def test_paging_iterates_lists_longer_than_a_page(arm_sim):
    resources, compute, _ = clients(arm_sim)
    rg = unique("rg-paging-")
    resources.resource_groups.create_or_update(rg, {"location": "eastus"})
    names = [f"g{i:02}" for i in range(23)]
    for name in names:
        compute.galleries.begin_create_or_update(rg, name, {"location": "eastus"}, **GALLERY)
    listed = [g.name for g in compute.galleries.list_by_resource_group(rg, api_version=GALLERY_API)]
    assert sorted(listed) == names
    groups = [g.name for g in resources.resource_groups.list()]
    assert rg in groups and "rg-image-sources" in groups


def test_deleting_a_gallery_with_definitions_raises_cannot_delete_resource(arm_sim):
    resources, compute, _ = clients(arm_sim)
    rg = unique("rg-nonempty-")
    resources.resource_groups.create_or_update(rg, {"location": "eastus"})
    compute.galleries.begin_create_or_update(rg, "full", {"location": "eastus"}, **GALLERY).result()
    compute.gallery_images.begin_create_or_update(rg, "full", "def", linux_definition(), **GALLERY).result()
    with pytest.raises(HttpResponseError) as raised:
        compute.galleries.begin_delete(rg, "full", **GALLERY).result()
    assert raised.value.status_code == 409
    assert raised.value.error.code == "CannotDeleteResource"


def test_definition_immutable_property_change_is_refused(arm_sim):
    resources, compute, _ = clients(arm_sim)
    rg = unique("rg-immutable-")
    resources.resource_groups.create_or_update(rg, {"location": "eastus"})
    compute.galleries.begin_create_or_update(rg, "imm", {"location": "eastus"}, **GALLERY).result()
    compute.gallery_images.begin_create_or_update(rg, "imm", "def", linux_definition(), **GALLERY).result()
    changed = linux_definition()
    changed["properties"]["osType"] = "Windows"
    with pytest.raises(HttpResponseError) as raised:
        compute.gallery_images.begin_create_or_update(rg, "imm", "def", changed, **GALLERY).result()
    assert raised.value.error.code == "PropertyChangeNotAllowed"




def test_cross_tenant_vm_create_needs_the_auxiliary_token(arm_sim):
    # The image lives in tenant 1; the VM goes to tenant 2's subscription.
    resources1, compute1, _ = clients(arm_sim)
    rg1 = unique("rg-shared-")
    resources1.resource_groups.create_or_update(rg1, {"location": "eastus"})
    compute1.galleries.begin_create_or_update(rg1, "shared", {"location": "eastus"}, **GALLERY).result()
    compute1.gallery_images.begin_create_or_update(rg1, "shared", "ubuntu", linux_definition(), **GALLERY).result()
    version = compute1.gallery_image_versions.begin_create_or_update(
        rg1,
        "shared",
        "ubuntu",
        "1.0.0",
        {"location": "eastus", "properties": {"storageProfile": {"source": {"id": arm_sim["SOURCE_LINUX_IMAGE_ID"]}}}},
        **GALLERY,
    ).result()

    cred2 = credential(arm_sim, "AZURE_TENANT_ID_2")
    sub2 = arm_sim["AZURE_SUBSCRIPTION_ID_2"]
    resources2 = client(ResourceManagementClient, arm_sim, cred2, sub2)
    network2 = client(NetworkManagementClient, arm_sim, cred2, sub2)
    rg2 = unique("rg-consumer-")
    resources2.resource_groups.create_or_update(rg2, {"location": "eastus"})
    nic = network2.network_interfaces.begin_create_or_update(
        rg2,
        "xt-nic",
        nic_body(arm_sim["SUBNET_ID_2"]),
        **FAST,
    ).result()

    without_aux = client(ComputeManagementClient, arm_sim, cred2, sub2)
    with pytest.raises(HttpResponseError) as raised:
        without_aux.virtual_machines.begin_create_or_update(
            rg2, "xt", vm_body(version.id, nic.id, "xt"), **FAST
        ).result()
    assert raised.value.status_code == 403
    assert raised.value.error.code == "LinkedAuthorizationFailed"

    aux = AuxiliaryAuthenticationPolicy([credential(arm_sim, "AZURE_TENANT_ID")], SCOPE)
    with_aux = client(ComputeManagementClient, arm_sim, cred2, sub2, per_call_policies=[aux])
    vm = with_aux.virtual_machines.begin_create_or_update(
        rg2, "xt", vm_body(version.id, nic.id, "xt"), **FAST
    ).result()
    assert vm.provisioning_state == "Succeeded"
    assert vm.storage_profile.image_reference.id.lower() == version.id.lower()


def test_disk_and_snapshot_creates_answer_as_the_disk_service_does(arm_sim):
    # The SDK accepts only 200 and 202 for these PUTs (DiskRP lists no 201): a 201 would raise.
    resources, compute, _ = clients(arm_sim)
    rg = unique("rg-disks-")
    resources.resource_groups.create_or_update(rg, {"location": "eastus"})
    body = {"location": "eastus", "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 32}}
    disk = compute.disks.begin_create_or_update(rg, "data1", body, **FAST).result()
    assert disk.provisioning_state == "Succeeded"
    snapshot = compute.snapshots.begin_create_or_update(rg, "snap1", body, **FAST).result()
    assert snapshot.provisioning_state == "Succeeded"


def test_the_sdk_sees_arms_rate_limits_and_a_dry_bucket_raises_subscription_requests_throttled(arm_sim):
    cred = credential(arm_sim)
    sub = arm_sim["AZURE_SUBSCRIPTION_ID"]
    seen = []

    def headers(response):
        seen.append(response.http_response.headers)

    vm_rg, vm_name = "rg-image-sources", "build-vm"
    compute = client(ComputeManagementClient, arm_sim, cred, sub)
    compute.virtual_machines.get(vm_rg, vm_name, raw_response_hook=headers)
    assert int(seen[-1]["x-ms-ratelimit-remaining-subscription-reads"]) < 250
    assert int(seen[-1]["x-ms-ratelimit-remaining-subscription-global-reads"]) < 3750

    # No SDK retries, so the 429 surfaces; a bucket of 2 that barely refills runs dry at once.
    strict = client(ComputeManagementClient, arm_sim, cred, sub, retry_total=0)
    arm_sim.admin("PUT", "/_sim/throttling", {"reads": {"burst": 2, "perSecond": 0.01}})
    try:
        with pytest.raises(HttpResponseError) as raised:
            for _ in range(3):
                strict.virtual_machines.get(vm_rg, vm_name)
        assert raised.value.status_code == 429
        assert raised.value.error.code == "SubscriptionRequestsThrottled"
        assert raised.value.error.message.startswith(f"Number of 'read' requests for subscription '{sub}' actor '")
        assert int(raised.value.response.headers["Retry-After"]) >= 1
    finally:
        arm_sim.admin("PUT", "/_sim/throttling", {})


def test_every_gallery_shape_round_trips_lists_and_updates(arm_sim):
    # A definition and a version with every field the operator sets, listed and patched: the
    # oav check (test_oav.py) validates these shapes against the GalleryRP swagger.
    resources, compute, _ = clients(arm_sim)
    rg = unique("rg-shapes-")
    resources.resource_groups.create_or_update(rg, {"location": "eastus"})
    compute.galleries.begin_create_or_update(
        rg, "shapes", {"location": "eastus", "tags": {"team": "images"}, "properties": {"description": "all fields"}}, **GALLERY
    ).result()
    full = linux_definition(sku="full")
    full["properties"].update(
        {
            "description": "every field",
            "eula": "https://example.com/eula",
            "privacyStatementUri": "https://example.com/privacy",
            "releaseNoteUri": "https://example.com/notes",
            "endOfLifeDate": "2030-01-01T00:00:00Z",
            "recommended": {"vCPUs": {"min": 2, "max": 16}, "memory": {"min": 4, "max": 64}},
            "disallowed": {"diskTypes": ["Standard_LRS"]},
            "purchasePlan": {"name": "plan", "publisher": "contoso", "product": "golden"},
            "features": [{"name": "IsAcceleratedNetworkSupported", "value": "True"}],
            "architecture": "x64",
        }
    )
    definition = compute.gallery_images.begin_create_or_update(rg, "shapes", "full", full, **GALLERY).result()
    assert definition.recommended.v_cp_us.max == 16
    # The specialized source is a snapshot of a Standard VM: Azure's default SecurityType
    # (TrustedLaunchSupported at 2025-03-03) would refuse it, so the definition says Standard.
    compute.gallery_images.begin_create_or_update(rg, "shapes", "special", linux_definition(sku="special") | {
        "properties": {**linux_definition(sku="special")["properties"], "osState": "Specialized",
                       "features": [{"name": "SecurityType", "value": "Standard"}]}}, **GALLERY).result()
    # The swagger's update bodies reuse the resource's properties, required fields included.
    required = {k: full["properties"][k] for k in ("osType", "osState", "identifier")}
    patched = compute.gallery_images.begin_update(
        rg, "shapes", "full", {"properties": {**required, "description": "patched"}}, **GALLERY
    ).result()
    assert patched.description == "patched"
    assert sorted(d.name for d in compute.gallery_images.list_by_gallery(rg, "shapes", api_version=GALLERY_API)) == ["full", "special"]

    version = compute.gallery_image_versions.begin_create_or_update(
        rg,
        "shapes",
        "full",
        "1.2.3",
        {
            "location": "eastus",
            "tags": {"build": "42"},
            "properties": {
                "publishingProfile": {
                    "targetRegions": [
                        {"name": "eastus", "regionalReplicaCount": 2, "storageAccountType": "Standard_ZRS"},
                        {"name": "westeurope", "regionalReplicaCount": 1, "excludeFromLatest": True},
                    ],
                    "replicaCount": 1,
                    "excludeFromLatest": False,
                    "endOfLifeDate": "2029-12-31T00:00:00Z",
                    "storageAccountType": "Standard_LRS",
                    "replicationMode": "Full",
                },
                "storageProfile": {"source": {"id": arm_sim["SOURCE_LINUX_IMAGE_ID"]}},
                "safetyProfile": {"allowDeletionOfReplicatedLocations": True},
            },
        },
        **GALLERY,
    ).result()
    assert version.publishing_profile.target_regions[0].regional_replica_count == 2
    special = compute.gallery_image_versions.begin_create_or_update(
        rg,
        "shapes",
        "special",
        "1.0.0",
        {
            "location": "eastus",
            "properties": {
                "storageProfile": {
                    "osDiskImage": {"source": {"id": arm_sim["SOURCE_SPECIALIZED_SNAPSHOT_ID"]}, "hostCaching": "ReadOnly"}
                }
            },
        },
        **GALLERY,
    ).result()
    assert special.storage_profile.os_disk_image.host_caching == "ReadOnly"
    updated = compute.gallery_image_versions.begin_update(
        rg,
        "shapes",
        "full",
        "1.2.3",
        {
            "properties": {
                "publishingProfile": {"excludeFromLatest": True},
                "storageProfile": {"source": {"id": arm_sim["SOURCE_LINUX_IMAGE_ID"]}},
            }
        },
        **GALLERY,
    ).result()
    assert updated.publishing_profile.exclude_from_latest is True
    listed = list(compute.gallery_image_versions.list_by_gallery_image(rg, "shapes", "full", api_version=GALLERY_API))
    assert [v.name for v in listed] == ["1.2.3"]
    assert "shapes" in [g.name for g in compute.galleries.list(api_version=GALLERY_API)]


# Today's Azure (../shared/azure-today.md §A–D) through the SDK's own operations.

G25 = {"api_version": "2025-03-03"}


def gallery_with(compute, resources, prefix, properties=None, location="eastus"):
    rg = unique(prefix)
    resources.resource_groups.create_or_update(rg, {"location": location})
    body = {"location": location, "properties": properties or {}}
    compute.galleries.begin_create_or_update(rg, "gal", body, **FAST).result()
    return rg


def version_body(source, regions=("eastus",), **publishing):
    key = "virtualMachineId" if "/virtualMachines/" in source else "id"
    profile = {"targetRegions": [{"name": r} for r in regions], **publishing}
    return {
        "location": "eastus",
        "properties": {"publishingProfile": profile, "storageProfile": {"source": {key: source}}},
    }


def test_definitions_default_to_trusted_launch_supported_and_trusted_launch_images_need_trusted_launch_vms(arm_sim):
    resources, compute, network = clients(arm_sim)
    rg = gallery_with(compute, resources, "rg-sdk-tl-")
    plain = linux_definition(sku="plain")
    del plain["properties"]["hyperVGeneration"]
    created = compute.gallery_images.begin_create_or_update(rg, "gal", "plain", plain, **FAST).result()
    assert created.hyper_v_generation == "V2"
    assert [(f.name, f.value) for f in created.features] == [("SecurityType", "TrustedLaunchSupported")]

    tl = linux_definition(sku="tl")
    tl["properties"]["features"] = [{"name": "SecurityType", "value": "TrustedLaunch"}]
    compute.gallery_images.begin_create_or_update(rg, "gal", "tl", tl, **FAST).result()
    with pytest.raises(HttpResponseError) as raised:
        compute.gallery_image_versions.begin_create_or_update(
            rg, "gal", "tl", "1.0.0", version_body(arm_sim["SOURCE_LINUX_IMAGE_ID"]), **FAST
        ).result()
    assert raised.value.error.code == "InvalidParameter"
    body = version_body(arm_sim["SOURCE_TRUSTED_LAUNCH_VM_ID"])
    body["properties"]["safetyProfile"] = {"blockDeletionBeforeEndOfLife": False}
    version = compute.gallery_image_versions.begin_create_or_update(rg, "gal", "tl", "1.0.0", body, **FAST).result()
    assert version.provisioning_state == "Succeeded"

    nic = network.network_interfaces.begin_create_or_update(rg, "tl-nic", nic_body(arm_sim["SUBNET_ID"]), **FAST).result()
    with pytest.raises(HttpResponseError) as raised:
        compute.virtual_machines.begin_create_or_update(rg, "plain", vm_body(version.id, nic.id, "plain"), **FAST).result()
    assert raised.value.status_code == 400
    assert raised.value.error.code == "BadRequest"
    assert raised.value.error.message == (
        "The provided gallery image only supports creation of VMs and VM Scale Sets with 'TrustedLaunch' security type."
    )
    trusted = vm_body(version.id, nic.id, "trusted")
    trusted["properties"]["securityProfile"] = {"securityType": "TrustedLaunch"}
    vm = compute.virtual_machines.begin_create_or_update(rg, "trusted", trusted, **FAST).result()
    assert vm.security_profile.security_type == "TrustedLaunch"
    assert vm.security_profile.uefi_settings.v_tpm_enabled is True


def test_versions_created_at_2026_03_03_cannot_be_deleted_before_their_end_of_life(arm_sim):
    resources, compute, _ = clients(arm_sim)
    rg = gallery_with(compute, resources, "rg-sdk-eol-")
    compute.gallery_images.begin_create_or_update(rg, "gal", "def", linux_definition(), **FAST).result()
    version = compute.gallery_image_versions.begin_create_or_update(
        rg, "gal", "def", "1.0.0", version_body(arm_sim["SOURCE_LINUX_IMAGE_ID"]), **FAST
    ).result()
    assert version.safety_profile.block_deletion_before_end_of_life is True
    assert version.publishing_profile.end_of_life_date > version.publishing_profile.published_date
    with pytest.raises(HttpResponseError) as raised:
        compute.gallery_image_versions.begin_delete(rg, "gal", "def", "1.0.0", **G25, **FAST).result()
    assert raised.value.status_code == 409
    assert raised.value.error.code == "OperationNotAllowed"

    past = version_body(arm_sim["SOURCE_LINUX_IMAGE_ID"], endOfLifeDate="2020-01-01T00:00:00Z")
    with pytest.raises(HttpResponseError) as raised:
        compute.gallery_image_versions.begin_create_or_update(rg, "gal", "def", "2.0.0", past, **FAST).result()
    assert raised.value.error.message == "EndOfLifeDate must be set to a future date."


def test_storage_account_strategy_prefers_zrs_where_the_region_has_zones(arm_sim):
    resources, compute, _ = clients(arm_sim)
    rg = gallery_with(compute, resources, "rg-sdk-zrs-")
    compute.gallery_images.begin_create_or_update(rg, "gal", "def", linux_definition(), **FAST).result()
    non_zonal = arm_sim["NON_ZONAL_REGION"]
    version = compute.gallery_image_versions.begin_create_or_update(
        rg, "gal", "def", "1.0.0", version_body(arm_sim["SOURCE_LINUX_IMAGE_ID"], ("eastus", non_zonal)), **G25, **FAST
    ).result()
    profile = version.publishing_profile
    assert profile.storage_account_strategy == "PreferStandard_ZRS"
    assert profile.storage_account_type is None
    assert [(t.name, t.storage_account_type) for t in profile.target_regions] == [
        ("East US", "Standard_ZRS"),
        ("West US", "Standard_LRS"),
    ]
    both = version_body(
        arm_sim["SOURCE_LINUX_IMAGE_ID"], storageAccountStrategy="PreferStandard_ZRS", storageAccountType="Standard_LRS"
    )
    with pytest.raises(HttpResponseError) as raised:
        compute.gallery_image_versions.begin_create_or_update(rg, "gal", "def", "2.0.0", both, **G25, **FAST).result()
    assert raised.value.error.code == "InvalidParameter"
    zrs = version_body(arm_sim["SOURCE_LINUX_IMAGE_ID"], ("eastus", non_zonal), storageAccountType="Standard_ZRS")
    with pytest.raises(HttpResponseError) as raised:
        compute.gallery_image_versions.begin_create_or_update(rg, "gal", "def", "2.0.0", zrs, **G25, **FAST).result()
    assert raised.value.error.message == "ZRS storage account type is not supported in this region."


def test_direct_sharing_through_the_share_action_is_read_with_select_permissions(arm_sim):
    resources, compute, _ = clients(arm_sim)
    rg = gallery_with(compute, resources, "rg-sdk-share-", {"sharingProfile": {"permissions": "Groups"}})
    sub2 = arm_sim["AZURE_SUBSCRIPTION_ID_2"]
    update = {"operationType": "Add", "groups": [{"type": "Subscriptions", "ids": [sub2]}]}
    result = compute.gallery_sharing_profile.begin_update(rg, "gal", update, **FAST).result()
    assert result.operation_type == "Add"
    assert [(g.type, g.ids) for g in result.groups] == [("Subscriptions", [sub2])]
    shared = compute.galleries.get(rg, "gal", select="Permissions")
    assert [(g.type, g.ids) for g in shared.sharing_profile.groups] == [("Subscriptions", [sub2])]
    assert compute.galleries.get(rg, "gal").sharing_profile.groups is None

    with pytest.raises(HttpResponseError) as raised:
        compute.galleries.begin_delete(rg, "gal", **FAST).result()
    assert raised.value.status_code == 409
    assert raised.value.error.code == "OperationNotAllowed"
    compute.gallery_sharing_profile.begin_update(rg, "gal", {"operationType": "Reset"}, **FAST).result()
    assert compute.galleries.get(rg, "gal", select="Permissions").sharing_profile.groups is None
    compute.galleries.begin_delete(rg, "gal", **FAST).result()
    with pytest.raises(ResourceNotFoundError):
        compute.galleries.get(rg, "gal")


def test_community_sharing_assigns_public_names(arm_sim):
    resources, compute, _ = clients(arm_sim)
    info = {
        "publisherUri": "https://contoso.example",
        "publisherContact": "images@contoso.example",
        "eula": "https://contoso.example/eula",
        "publicNamePrefix": "Contoso",
    }
    rg = gallery_with(
        compute, resources, "rg-sdk-community-", {"sharingProfile": {"permissions": "Community", "communityGalleryInfo": info}}
    )
    result = compute.gallery_sharing_profile.begin_update(rg, "gal", {"operationType": "EnableCommunity"}, **FAST).result()
    assert result.operation_type == "EnableCommunity"
    community = compute.galleries.get(rg, "gal").sharing_profile.community_gallery_info
    assert community.community_gallery_enabled is True
    assert len(community.public_names) == 1 and community.public_names[0].startswith("Contoso-")
    tl = linux_definition(sku="tl")
    tl["properties"]["features"] = [{"name": "SecurityType", "value": "TrustedLaunch"}]
    with pytest.raises(HttpResponseError) as raised:
        compute.gallery_images.begin_create_or_update(rg, "gal", "tl", tl, **FAST).result()
    assert raised.value.error.code == "InvalidParameter"


def test_soft_deleted_versions_are_listed_and_restored(arm_sim):
    resources, compute, _ = clients(arm_sim)
    rg = gallery_with(compute, resources, "rg-sdk-soft-", {"softDeletePolicy": {"isSoftDeleteEnabled": True}})
    assert compute.galleries.get(rg, "gal").soft_delete_policy.is_soft_delete_enabled is True
    compute.gallery_images.begin_create_or_update(rg, "gal", "def", linux_definition(), **FAST).result()
    compute.gallery_image_versions.begin_create_or_update(
        rg, "gal", "def", "1.0.0", version_body(arm_sim["SOURCE_LINUX_IMAGE_ID"]), **G25, **FAST
    ).result()
    compute.gallery_image_versions.begin_delete(rg, "gal", "def", "1.0.0", **FAST).result()
    kept = list(compute.soft_deleted_resource.list_by_artifact_name(rg, "gal", "Images", "def"))
    assert [(k.name, k.soft_deleted_artifact_type) for k in kept] == [("1.0.0", "Images")]
    assert kept[0].resource_arm_id.endswith("/images/def/versions/1.0.0")
    with pytest.raises(HttpResponseError) as raised:
        compute.gallery_images.begin_delete(rg, "gal", "def", **FAST).result()
    assert raised.value.error.code == "CannotDeleteResource"

    restored = compute.gallery_image_versions.begin_update(
        rg, "gal", "def", "1.0.0", {"properties": {"restore": True, "storageProfile": {}}}, **FAST
    ).result()
    assert restored.provisioning_state == "Succeeded"
    assert restored.storage_profile.source.id == arm_sim["SOURCE_LINUX_IMAGE_ID"]
    assert list(compute.soft_deleted_resource.list_by_artifact_name(rg, "gal", "Images", "def")) == []
