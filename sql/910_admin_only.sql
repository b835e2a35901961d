-- Tables only admins may read, after 900_grants.sql gave every gk_public table to both roles:
-- the audit log names tokens and what they changed.
revoke select on gk_public.audit_events from gk_viewer;
