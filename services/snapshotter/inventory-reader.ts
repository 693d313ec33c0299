import {
  ApiGatewayV2Client, GetApisCommand, GetIntegrationsCommand, NotFoundException,
  type Api, type Integration,
} from '@aws-sdk/client-apigatewayv2';
import { scopeLabels, type AwsScope } from '../shared/aws-scope.js';
import type { Metrics } from '../shared/metrics.js';

/** Reads the API Gateway v2 inventory of one account's region, every page of every list. */
export function createInventoryReader({ client, scope, metrics }: { client: ApiGatewayV2Client; scope: AwsScope; metrics: Metrics }) {
  const labels = scopeLabels(scope);
  async function call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    metrics.awsCalls.inc({ ...labels, operation });
    try {
      return await run();
    } catch (error) {
      if (!(error instanceof NotFoundException)) metrics.awsErrors.inc({ ...labels, operation });
      throw error;
    }
  }

  return {
    async listApis(): Promise<Api[]> {
      const apis: Api[] = [];
      let nextToken: string | undefined;
      do {
        const page = await call('GetApis', () => client.send(new GetApisCommand({ MaxResults: '500', NextToken: nextToken })));
        apis.push(...(page.Items ?? []));
        nextToken = page.NextToken;
      } while (nextToken);
      return apis;
    },

    /** Every integration of the API, or null when the API vanished since it was listed. */
    async listIntegrations(apiId: string): Promise<Integration[] | null> {
      const integrations: Integration[] = [];
      let nextToken: string | undefined;
      try {
        do {
          const page = await call('GetIntegrations', () => client.send(new GetIntegrationsCommand({ ApiId: apiId, MaxResults: '500', NextToken: nextToken })));
          integrations.push(...(page.Items ?? []));
          nextToken = page.NextToken;
        } while (nextToken);
      } catch (error) {
        if (error instanceof NotFoundException) return null;
        throw error;
      }
      return integrations;
    },
  };
}
