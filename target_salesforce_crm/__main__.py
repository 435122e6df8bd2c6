"""``python -m target_salesforce_crm`` runs the target's CLI."""

from target_salesforce_crm.target import TargetSalesforceCRM

TargetSalesforceCRM.cli()
