-- How every report prices a request. Not a report: `lynkr report` builds the `requests` view
-- from this, over the raw table and a `prices` table (USD per million tokens, resolved from the
-- model catalogue and the pipeline's `models:` when the report runs), so a price fix re-prices history.
--
--   cost_usd      what the request cost: provider-reported usage (input, cache read, cache write,
--                 output) at the prices of the model that was called; the tokens sent upstream
--                 when the provider reported none; 0 for a cache hit and for an error.
--   baseline_usd  what it would have cost without Lynkr: the client's request sent to the model
--                 it asked for. The input side is the provider's input usage scaled by
--                 tokens_client / tokens_upstream (what the stages removed, in the same
--                 tokenizer on both sides); output is the same output at the requested model's price.
--   saved_usd     baseline_usd - cost_usd.
--   tokens_saved  tokens_client - tokens_upstream (all of tokens_client on a cache hit).
WITH base AS (
  SELECT
    r.*,
    coalesce(r.status, 200) >= 400                              AS _failed,
    coalesce(r.cache IN ('exact', 'semantic', 'hit'), false)    AS _hit,
    coalesce(r.usage_input, r.tokens_upstream, 0)               AS _in,
    coalesce(r.usage_cache_read, 0)                             AS _cr,
    coalesce(r.usage_cache_write, 0)                            AS _cw,
    coalesce(r.usage_output, 0)                                 AS _out,
    CASE WHEN r.usage_input IS NOT NULL AND r.tokens_upstream > 0
         THEN coalesce(r.tokens_client, 0)::DOUBLE / r.tokens_upstream END AS _scale,
    pc.input AS _c_in, pc.output AS _c_out, pc.cache_read AS _c_cr, pc.cache_write AS _c_cw,
    -- A requested model without a price (an alias, a typo) is priced as the model called.
    coalesce(pb.input, pc.input)             AS _b_in,
    coalesce(pb.output, pc.output)           AS _b_out,
    coalesce(pb.cache_read, pc.cache_read)   AS _b_cr,
    coalesce(pb.cache_write, pc.cache_write) AS _b_cw
  FROM tel.main.requests r
  LEFT JOIN prices pc ON pc.provider = r.provider AND pc.model = r.model
  LEFT JOIN prices pb ON pb.provider IS NULL AND pb.model = r.requested_model
  {where}
), priced AS (
  SELECT
    *,
    CASE WHEN _failed OR _hit THEN 0.0
         ELSE (_in * _c_in + _cr * _c_cr + _cw * _c_cw + _out * _c_out) / 1e6 END AS cost_usd,
    CASE WHEN _failed THEN 0.0
         WHEN _hit OR _scale IS NULL THEN coalesce(tokens_client, 0) * _b_in / 1e6
         ELSE (_in * _b_in + _cr * _b_cr + _cw * _b_cw) * _scale / 1e6 END      AS baseline_input_usd,
    CASE WHEN _failed THEN 0.0 ELSE _out * _b_out / 1e6 END                    AS baseline_output_usd
  FROM base
)
SELECT
  * EXCLUDE (_failed, _hit, _in, _cr, _cw, _out, _scale, _c_in, _c_out, _c_cr, _c_cw, _b_in, _b_out, _b_cr, _b_cw,
             baseline_input_usd, baseline_output_usd),
  _hit                                                         AS cache_hit,
  _c_in IS NOT NULL                                            AS priced,
  cost_usd,
  baseline_input_usd + baseline_output_usd                     AS baseline_usd,
  round(baseline_input_usd + baseline_output_usd - cost_usd, 12) AS saved_usd,   -- no 1e-20 float dust
  -- USD of one client token at the requested model: prices a stage's token savings.
  baseline_input_usd / nullif(tokens_client, 0)                AS usd_per_client_token,
  CASE WHEN _failed THEN 0
       WHEN _hit THEN coalesce(tokens_client, 0)
       ELSE coalesce(tokens_client, 0) - coalesce(tokens_upstream, 0) END AS tokens_saved
FROM priced
