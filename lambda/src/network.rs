//! A task's addresses, from its elastic network interface.

use aws_sdk_ec2::error::ProvideErrorMetadata;

/// What EC2 says about the task's ENI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("EC2 DescribeNetworkInterfaces for {eni} failed: {code}: {message}")]
pub struct NetworkError {
    pub eni: String,
    pub code: String,
    pub message: String,
}

pub struct Network {
    ec2: aws_sdk_ec2::Client,
}

impl Network {
    pub fn new(ec2: aws_sdk_ec2::Client) -> Self {
        Self { ec2 }
    }

    /// The ENI's addresses; `Ok(None)` if the ENI is already gone.
    pub async fn addresses(&self, eni: &str) -> Result<Option<Addresses>, NetworkError> {
        let result = self.ec2.describe_network_interfaces().network_interface_ids(eni).send().await;
        let output = match result {
            Ok(output) => output,
            Err(e) if e.code() == Some("InvalidNetworkInterfaceID.NotFound") => return Ok(None),
            Err(e) => {
                return Err(NetworkError {
                    eni: eni.to_owned(),
                    code: e.code().unwrap_or("unknown").to_owned(),
                    message: e.message().map_or_else(|| e.to_string(), str::to_owned),
                });
            }
        };
        Ok(output.network_interfaces().first().map(|interface| Addresses {
            public_ip: interface.association().and_then(|a| a.public_ip()).map(str::to_owned),
            private_ip: interface.private_ip_address().map(str::to_owned),
        }))
    }
}
