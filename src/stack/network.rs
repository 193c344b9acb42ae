//! Where the relay tasks run: a VPC and its subnets (the default VPC unless `--vpc`/`--subnets`),
//! and the relay's security group, which lets in exactly TCP 8443 (HTTPS: the front door's calls, WHIP)
//! and the one UDP port all WebRTC media uses.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Ipv6Range, ResourceType, Tag, TagSpecification};

use super::resource::{Action, Resource};
use super::{Change, Names, Observed, TAG_KEY, tagged};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;
use crate::wait::{DRAIN, retrying};

/// The VPC and subnets the service runs in.
#[derive(Debug, Clone)]
pub struct Placement {
    pub vpc_id: String,
    pub subnets: Vec<String>,
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Finds the default VPC and its default subnets, or checks the ones the user named.
pub async fn placement(aws: &Aws, vpc: Option<&str>, subnets: &[String]) -> Result<Placement, AwsError> {
    let vpc_id = match vpc {
        Some(id) => id.to_owned(),
        None => {
            let vpcs =
                aws.ec2.describe_vpcs().filters(filter("is-default", "true")).send().await.on("default VPC", op!("ec2:DescribeVpcs"))?;
            vpcs.vpcs().first().and_then(|v| v.vpc_id()).map(str::to_owned).ok_or_else(|| {
                AwsError::new(
                    "default VPC",
                    op!("ec2:DescribeVpcs"),
                    "NoDefaultVpc",
                    format!(
                        "region {} has no default VPC: create one (`aws ec2 create-default-vpc`) or pass --vpc and --subnets",
                        aws.region
                    ),
                )
            })?
        }
    };
    if !subnets.is_empty() {
        return Ok(Placement { vpc_id, subnets: subnets.to_vec() });
    }
    let resource = format!("subnets of {vpc_id}");
    let mut request = aws.ec2.describe_subnets().filters(filter("vpc-id", &vpc_id));
    if vpc.is_none() {
        request = request.filters(filter("default-for-az", "true"));
    }
    let found = request.send().await.on(&resource, op!("ec2:DescribeSubnets"))?;
    let mut ids: Vec<String> = found.subnets().iter().filter_map(|s| s.subnet_id()).map(str::to_owned).collect();
    ids.sort();
    if ids.is_empty() {
        return Err(AwsError::new(
            resource,
            op!("ec2:DescribeSubnets"),
            "NoSubnets",
            "the VPC has no subnets to run tasks in: pass --subnets",
        ));
    }
    Ok(Placement { vpc_id, subnets: ids })
}

/// One ingress permission, flattened: protocol, port range, source CIDR.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ingress {
    protocol: String,
    from: i32,
    to: i32,
    cidr: String,
}

impl Ingress {
    fn describe(&self) -> String {
        let ports = if self.from == self.to { self.from.to_string() } else { format!("{}-{}", self.from, self.to) };
        format!("{}/{ports} from {}", self.protocol, self.cidr)
    }

    fn permission(&self) -> IpPermission {
        let builder = IpPermission::builder().ip_protocol(&self.protocol).from_port(self.from).to_port(self.to);
        if self.cidr.contains(':') {
            builder.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(&self.cidr).build()).build()
        } else {
            builder.ip_ranges(IpRange::builder().cidr_ip(&self.cidr).build()).build()
        }
    }
}

const ANYWHERE: [&str; 2] = ["0.0.0.0/0", "::/0"];

fn wanted(udp_port: u16) -> BTreeSet<Ingress> {
    let port = i32::from(crate::commands::deploy::RELAY_HTTPS_PORT);
    let https = ANYWHERE.iter().map(|cidr| Ingress { protocol: "tcp".into(), from: port, to: port, cidr: (*cidr).into() });
    https.chain(media(udp_port)).collect()
}

/// The rules that open the WebRTC media port.
fn media(udp_port: u16) -> impl Iterator<Item = Ingress> {
    let port = i32::from(udp_port);
    ANYWHERE.into_iter().map(move |cidr| Ingress { protocol: "udp".into(), from: port, to: port, cidr: cidr.into() })
}

fn flatten(permissions: &[IpPermission]) -> BTreeSet<Ingress> {
    let mut rules = BTreeSet::new();
    for p in permissions {
        let protocol = p.ip_protocol().unwrap_or("-1").to_owned();
        let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
        let v4 = p.ip_ranges().iter().filter_map(|r| r.cidr_ip());
        let v6 = p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6());
        let groups = p.user_id_group_pairs().iter().filter_map(|g| g.group_id());
        let lists = p.prefix_list_ids().iter().filter_map(|l| l.prefix_list_id());
        for cidr in v4.chain(v6).chain(groups).chain(lists) {
            rules.insert(Ingress { protocol: protocol.clone(), from, to, cidr: cidr.to_owned() });
        }
    }
    rules
}

/// The relay's security group, in the stack's VPC (any VPC for teardown and status).
pub struct SecurityGroup<'a> {
    pub names: &'a Names,
    pub vpc: Option<&'a str>,
}

/// The group as the stack wants it.
pub struct GroupSpec {
    pub vpc_id: String,
    pub udp_port: u16,
    /// The media port running tasks still use, when it differs: it stays open until they are
    /// replaced (see [`retire_media_port`]).
    pub in_use_udp: Option<u16>,
}

impl GroupSpec {
    /// Rules to open and rules to close.
    fn changes(&self, live: &Live) -> (Vec<Ingress>, Vec<Ingress>, Vec<Ingress>) {
        let want = wanted(self.udp_port);
        let kept: BTreeSet<Ingress> = self.in_use_udp.filter(|p| *p != self.udp_port).map(media).into_iter().flatten().collect();
        let have = flatten(&live.ingress);
        let missing = want.difference(&have).cloned().collect();
        let extra = have.difference(&want).filter(|r| !kept.contains(r)).cloned().collect();
        let kept = have.intersection(&kept).cloned().collect();
        (missing, extra, kept)
    }
}

pub struct Live {
    id: String,
    tagged: bool,
    ingress: Vec<IpPermission>,
}

impl SecurityGroup<'_> {
    async fn revoke(&self, aws: &Aws, id: &str, rules: &[Ingress]) -> Result<(), AwsError> {
        if !rules.is_empty() {
            aws.ec2
                .revoke_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(rules.iter().map(Ingress::permission).collect()))
                .send()
                .await
                .on(&self.label(), op!("ec2:RevokeSecurityGroupIngress"))?;
        }
        Ok(())
    }

    async fn authorize(&self, aws: &Aws, id: &str, rules: &[Ingress]) -> Result<(), AwsError> {
        if !rules.is_empty() {
            aws.ec2
                .authorize_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(rules.iter().map(Ingress::permission).collect()))
                .send()
                .await
                .on(&self.label(), op!("ec2:AuthorizeSecurityGroupIngress"))?;
        }
        Ok(())
    }
}

impl Resource for SecurityGroup<'_> {
    type Live = Live;
    type Desired = GroupSpec;
    /// The group's id; `None` only in a dry run that would create it.
    type Output = Option<String>;

    fn label(&self) -> String {
        format!("security group {}", self.names.security_group)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let mut request = aws.ec2.describe_security_groups().filters(filter("group-name", &self.names.security_group));
        if let Some(vpc) = self.vpc {
            request = request.filters(filter("vpc-id", vpc));
        }
        let found = request.send().await.on(&self.label(), op!("ec2:DescribeSecurityGroups"))?;
        let ours =
            |g: &&aws_sdk_ec2::types::SecurityGroup| tagged(g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))), self.names);
        // Prefer the tagged one when another VPC holds a look-alike.
        let groups = found.security_groups();
        let pick = groups.iter().find(ours).or_else(|| groups.first());
        Ok(pick.map(|g| Live { id: g.group_id().unwrap_or_default().to_owned(), tagged: ours(&g), ingress: g.ip_permissions().to_vec() }))
    }

    fn is_ours(&self, live: &Live) -> bool {
        live.tagged
    }

    fn diff(&self, desired: &GroupSpec, live: &Live) -> Action {
        let (missing, extra, kept) = desired.changes(live);
        Action::update_if(
            extra
                .iter()
                .map(|r| format!("removed ingress {}", r.describe()))
                .chain(missing.iter().map(|r| format!("added ingress {}", r.describe())))
                .chain(kept.iter().map(|r| format!("kept ingress {} until the relay tasks roll out", r.describe())))
                .collect(),
        )
    }

    fn output(&self, _: &Aws, _: &GroupSpec, live: Option<&Live>) -> Option<String> {
        live.map(|l| l.id.clone())
    }

    async fn create(&self, aws: &Aws, desired: &GroupSpec) -> Result<Option<String>, AwsError> {
        let created = aws
            .ec2
            .create_security_group()
            .group_name(&self.names.security_group)
            .description(format!("ivs-relay of ivsctl stack {}: HTTPS and WebRTC media", self.names.stack))
            .vpc_id(&desired.vpc_id)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroup)
                    .tags(Tag::builder().key(TAG_KEY).value(self.names.tag_value()).build())
                    .build(),
            )
            .send()
            .await
            .on(&self.label(), op!("ec2:CreateSecurityGroup"))?;
        let id = created.group_id().unwrap_or_default().to_owned();
        let wanted: Vec<Ingress> = wanted(desired.udp_port).into_iter().collect();
        self.authorize(aws, &id, &wanted).await?;
        Ok(Some(id))
    }

    /// Only the rules that differ change, so connections through the others never drop.
    async fn update(&self, aws: &Aws, desired: &GroupSpec, live: &Live) -> Result<Option<String>, AwsError> {
        let (missing, extra, _) = desired.changes(live);
        self.revoke(aws, &live.id, &extra).await?;
        self.authorize(aws, &live.id, &missing).await?;
        Ok(Some(live.id.clone()))
    }

    /// ENIs of stopping tasks hold the group for a while after the service is gone, so
    /// `DependencyViolation` is waited out.
    async fn delete(&self, aws: &Aws, live: Live) -> Result<(), AwsError> {
        retrying(&["DependencyViolation"], DRAIN, || aws.ec2.delete_security_group().group_id(&live.id).send()).await.or_missing(
            &["InvalidGroup.NotFound"],
            &self.label(),
            op!("ec2:DeleteSecurityGroup"),
        )?;
        Ok(())
    }

    fn describe(&self, live: &Live) -> Observed {
        let rules: Vec<String> = flatten(&live.ingress).iter().map(Ingress::describe).collect();
        Observed::present(Some(live.id.clone()), format!("ingress {}", rules.join(", ")))
    }
}

/// Closes a media port the tasks no longer use, once a rollout to another one is done.
pub async fn retire_media_port(aws: &Aws, group: &SecurityGroup<'_>, udp_port: u16) -> Result<Change, AwsError> {
    let Some(live) = group.read(aws).await?.filter(|live| live.tagged) else { return Ok(Change::NoOp) };
    let stale: Vec<Ingress> = media(udp_port).filter(|r| flatten(&live.ingress).contains(r)).collect();
    group.revoke(aws, &live.id, &stale).await?;
    Ok(Action::update_if(stale.iter().map(|r| format!("removed ingress {}", r.describe())).collect()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(rules: &[(&str, i32, &str)]) -> Live {
        let ingress = rules
            .iter()
            .map(|(protocol, port, cidr)| {
                Ingress { protocol: (*protocol).into(), from: *port, to: *port, cidr: (*cidr).into() }.permission()
            })
            .collect();
        Live { id: "sg-1".into(), tagged: true, ingress }
    }

    #[test]
    fn exactly_https_and_the_media_port_are_open_and_the_old_port_stays_until_the_rollout() {
        let names = Names::new(&"ivs".parse().expect("name"));
        let group = SecurityGroup { names: &names, vpc: None };
        let spec = GroupSpec { vpc_id: "vpc-1".into(), udp_port: 50000, in_use_udp: None };
        let exact = [("tcp", 8443, "0.0.0.0/0"), ("tcp", 8443, "::/0"), ("udp", 50000, "0.0.0.0/0"), ("udp", 50000, "::/0")];
        assert_eq!(group.diff(&spec, &live(&exact)), Action::NoOp);
        let mut ssh = exact.to_vec();
        ssh.push(("tcp", 22, "0.0.0.0/0"));
        assert_eq!(group.diff(&spec, &live(&ssh)), Action::Update(vec!["removed ingress tcp/22 from 0.0.0.0/0".into()]));

        let moved = GroupSpec { udp_port: 50001, in_use_udp: Some(50000), ..spec };
        let Action::Update(reasons) = group.diff(&moved, &live(&exact)) else { panic!("update") };
        assert!(reasons.iter().any(|r| r == "added ingress udp/50001 from 0.0.0.0/0"), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.starts_with("kept ingress udp/50000")), "{reasons:?}");
        assert!(!reasons.iter().any(|r| r.starts_with("removed")), "{reasons:?}");
    }
}
