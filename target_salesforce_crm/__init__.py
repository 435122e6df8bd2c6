"""target-salesforce-crm: a Singer target for Salesforce CRM Contacts and Leads with segments."""
