"""What the S3 and permission scanners share about AWS: the client, the policy reader, IAM.

:mod:`~hipaa_audit.aws.client` connects read-only and turns every answer into data;
:mod:`~hipaa_audit.aws.policy` reads bucket policies and ACLs the way S3 evaluates them;
:mod:`~hipaa_audit.aws.iam_policy` maps IAM policy actions and resources onto S3 buckets and
objects; :mod:`~hipaa_audit.aws.iam_details` reads IAM's account authorization details.
"""
