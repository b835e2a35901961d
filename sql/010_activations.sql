-- Reconciler activations: a periodic task opens one, records counts and per-item errors, closes it.

create or replace function gk_private.activation_start(task text)
returns bigint
language sql volatile
as $$
  insert into gk_public.activations (task) values (task) returning id;
$$;

create or replace function gk_private.activation_finish(activation_id bigint, counts jsonb, error text default null)
returns void
language sql volatile
as $$
  update gk_public.activations
     set finished_at = clock_timestamp(),
         counts = coalesce(activation_finish.counts, '{}'::jsonb),
         status = case when activation_finish.error is null then 'succeeded' else 'failed' end,
         error = activation_finish.error
   where id = activation_finish.activation_id and status = 'running';
$$;

create or replace function gk_private.activation_error(activation_id bigint, item text, error text)
returns void
language sql volatile
as $$
  insert into gk_public.activation_errors (activation_id, item, error) values ($1, $2, $3);
$$;
