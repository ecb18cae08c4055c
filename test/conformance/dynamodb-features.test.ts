/** The conformance suite's feature behaviours on the DynamoDB engine (DynamoDB Local); the core ones in dynamodb.test.ts. */
import { defineDynamoDbConformance } from './dynamodb-engine.js';

defineDynamoDbConformance('features');
